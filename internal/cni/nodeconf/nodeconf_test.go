package nodeconf

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestCNIConf(t *testing.T) {
	dir := t.TempDir()
	path, err := Write(dir, Paths{SubnetFile: "/data/flannel/subnet.env", FlannelData: "/data/cni/flannel", IPAMData: "/data/cni/networks"})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != FileName {
		t.Fatalf("wrote %s", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Name    string
		Plugins []struct {
			Type       string
			SubnetFile string
			DataDir    string
			Delegate   struct {
				Bridge                        string
				IsDefaultGateway, HairpinMode bool
			}
			IPAM         struct{ DataDir string }
			Capabilities map[string]bool
		}
	}
	if err := json.Unmarshal(b, &conf); err != nil {
		t.Fatalf("conflist is not JSON: %v\n%s", err, b)
	}
	if len(conf.Plugins) != 2 || conf.Plugins[1].Type != "portmap" || !conf.Plugins[1].Capabilities["portMappings"] {
		t.Fatalf("want flannel then portmap: %s", b)
	}
	fl := conf.Plugins[0]
	if fl.Type != "flannel" || fl.SubnetFile != "/data/flannel/subnet.env" || fl.DataDir != "/data/cni/flannel" ||
		fl.Delegate.Bridge != BridgeName || !fl.Delegate.IsDefaultGateway || !fl.Delegate.HairpinMode || fl.IPAM.DataDir != "/data/cni/networks" {
		t.Fatalf("flannel config wrong: %s", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("want only %s in the conf dir, got %d entries", FileName, len(entries))
	}
}
