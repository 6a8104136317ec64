package record

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestOwnerAlive(t *testing.T) {
	self, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	if !self.Alive() {
		t.Fatalf("own process %+v not alive", self)
	}
	if (Owner{PID: self.PID, Start: self.Start + 1}).Alive() {
		t.Error("a recycled pid (other start time) counts as alive")
	}
	if (Owner{PID: 0}).Alive() {
		t.Error("pid 0 counts as alive")
	}
}

func TestWriteReadList(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "records")
	if got, err := List(dir); err != nil || len(got) != 0 {
		t.Fatalf("List of a missing dir: %v, %v", got, err)
	}
	type rec struct {
		Owner Owner
		Name  string
	}
	in := rec{Owner{PID: 42, Start: 7}, "x"}
	p := filepath.Join(dir, "x.json")
	if err := Write(p, in); err != nil {
		t.Fatal(err)
	}
	// Neither temp files nor other files are records.
	os.WriteFile(filepath.Join(dir, ".x.json.tmp123"), []byte("{"), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hi"), 0o644)
	got, err := List(dir)
	if err != nil || !reflect.DeepEqual(got, []string{p}) {
		t.Fatalf("List: %v, %v; want [%s]", got, err, p)
	}
	var out rec
	if err := Read(p, &out); err != nil || out != in {
		t.Fatalf("Read: %+v, %v; want %+v", out, err, in)
	}
	if err := Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := Remove(p); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	os.WriteFile(p, []byte("not json"), 0o644)
	if err := Read(p, &out); err == nil {
		t.Error("Read of a corrupt record succeeded")
	}
}
