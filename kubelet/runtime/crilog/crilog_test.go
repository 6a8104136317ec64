package crilog

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestWriterFormat(t *testing.T) {
	var out bytes.Buffer
	ts := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	w := NewWriter(&out, func() time.Time { return ts })
	long := strings.Repeat("x", maxLine+10)
	if err := w.Copy("stdout", strings.NewReader("hello\n\nworld\n"+long+"\nlast")); err != nil {
		t.Fatal(err)
	}
	if err := w.Copy("stderr", strings.NewReader("oops\n")); err != nil {
		t.Fatal(err)
	}
	p := "2026-01-02T03:04:05.0000006Z "
	want := p + "stdout F hello\n" + p + "stdout F \n" + p + "stdout F world\n" +
		p + "stdout P " + long[:maxLine] + "\n" + p + "stdout F " + long[maxLine:] + "\n" +
		p + "stdout F last\n" + p + "stderr F oops\n"
	if got := out.String(); got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
}

func TestDriverArgsRoundTrip(t *testing.T) {
	args := DriverArgs("/var/log/pods/x/c/0.log", Rotation{})
	var argv []string
	for k, v := range args {
		argv = append(argv, k, v)
	}
	if p, ok := DriverPath(argv); !ok || p != "/var/log/pods/x/c/0.log" {
		t.Fatalf("DriverPath(%q) = %q %v", argv, p, ok)
	}
	if _, ok := DriverPath([]string{"kubelet", "--root-dir=/x"}); ok {
		t.Fatal("a normal kubelet invocation must not be taken for the driver")
	}
}
