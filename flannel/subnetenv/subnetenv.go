// Package subnetenv writes and reads subnet.env, the file through which
// flanneld tells the CNI meta-plugin (and the node's next flanneld) which
// subnet this node holds. Writes are atomic: a reader sees the old file or
// the new one, never a torn one.
package subnetenv

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Env is the content of subnet.env.
type Env struct {
	Network netip.Prefix // FLANNEL_NETWORK, the cluster CIDR
	Subnet  netip.Prefix // FLANNEL_SUBNET, written as the gateway: 10.244.1.1/24
	MTU     int          // FLANNEL_MTU
	IPMasq  bool         // FLANNEL_IPMASQ
}

// Render returns the file content; Subnet is rendered with its first host
// address, the bridge gateway, as upstream does.
func (e Env) Render() []byte {
	gw := netip.PrefixFrom(e.Subnet.Masked().Addr().Next(), e.Subnet.Bits())
	return []byte(fmt.Sprintf("FLANNEL_NETWORK=%s\nFLANNEL_SUBNET=%s\nFLANNEL_MTU=%d\nFLANNEL_IPMASQ=%t\n", e.Network, gw, e.MTU, e.IPMasq))
}

// Write replaces path with e atomically (temp file, fsync, rename). An
// unchanged file is not rewritten.
func Write(path string, e Env) error {
	data := e.Render()
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, ".subnet.env-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Read parses path. Subnet comes back masked (10.244.1.0/24).
func Read(path string) (Env, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Env{}, err
	}
	return Parse(data)
}

// Parse parses subnet.env content; every key is required.
func Parse(data []byte) (Env, error) {
	var e Env
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return e, fmt.Errorf("subnet.env line %d: %q is not KEY=VALUE", n, line)
		}
		var err error
		switch k {
		case "FLANNEL_NETWORK":
			e.Network, err = netip.ParsePrefix(v)
		case "FLANNEL_SUBNET":
			e.Subnet, err = netip.ParsePrefix(v)
			e.Subnet = e.Subnet.Masked()
		case "FLANNEL_MTU":
			e.MTU, err = strconv.Atoi(v)
		case "FLANNEL_IPMASQ":
			e.IPMasq, err = strconv.ParseBool(v)
		default:
			continue // other keys (upstream's FLANNEL_IPV6_*) are not ours
		}
		if err != nil {
			return e, fmt.Errorf("subnet.env line %d: %s: %v", n, k, err)
		}
		seen[k] = true
	}
	for _, k := range []string{"FLANNEL_NETWORK", "FLANNEL_SUBNET", "FLANNEL_MTU", "FLANNEL_IPMASQ"} {
		if !seen[k] {
			return e, fmt.Errorf("subnet.env: %s is missing", k)
		}
	}
	return e, nil
}
