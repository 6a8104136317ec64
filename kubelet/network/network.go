// Package network attaches pod sandboxes to the pod network by invoking CNI
// plugins through libcni: the first configuration in the CNI conf dir (as
// upstream), plugins searched in a list of bin dirs, and loopback brought up
// with the loopback plugin like containerd's CRI does.
package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/hoist-project/hoist/internal/nsutil"
)

// Config says where CNI configuration, plugins and libcni's cache live.
type Config struct {
	ConfDir  string   // e.g. /etc/cni/net.d
	BinDirs  []string // searched in order, e.g. /opt/cni/bin
	CacheDir string   // libcni's result cache (kept so DEL works across restarts)
	IfName   string   // default eth0
	// HostNetNS, if set, is the netns the plugins run in (the "host" side of
	// the pod network) instead of the kubelet's own: for nodes simulated as
	// network namespaces and for tests that must not touch the root netns.
	HostNetNS string
}

// Attachment names one sandbox's network attachment.
type Attachment struct {
	ID           string // sandbox ID (the CNI container ID)
	NetNS        string // netns path
	PodName      string
	PodNamespace string
	PodUID       string
}

// Manager invokes CNI for sandboxes.
type Manager struct {
	cfg Config
	cni *libcni.CNIConfig
}

const loopbackConf = `{"cniVersion":"1.0.0","name":"cni-loopback","plugins":[{"type":"loopback"}]}`

// New returns a manager; it does not touch the disk until used.
func New(cfg Config) *Manager {
	if cfg.IfName == "" {
		cfg.IfName = "eth0"
	}
	return &Manager{cfg: cfg, cni: libcni.NewCNIConfigWithCacheDir(cfg.BinDirs, cfg.CacheDir, nil)}
}

// ErrNotReady wraps every "no usable CNI configuration" error.
var ErrNotReady = errors.New("network plugin not ready")

// Status returns nil when a network configuration is available, or an error
// an operator can act on (it names the directory).
func (m *Manager) Status() error {
	_, err := m.load()
	return err
}

// load returns the first configuration in the conf dir, by file name.
func (m *Manager) load() (*libcni.NetworkConfigList, error) {
	files, err := libcni.ConfFiles(m.cfg.ConfDir, []string{".conf", ".conflist", ".json"})
	if err != nil {
		return nil, fmt.Errorf("%w: read CNI conf dir %s: %v", ErrNotReady, m.cfg.ConfDir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w: no CNI configuration in %s", ErrNotReady, m.cfg.ConfDir)
	}
	sort.Strings(files)
	f := files[0]
	var list *libcni.NetworkConfigList
	if filepath.Ext(f) == ".conflist" {
		list, err = libcni.ConfListFromFile(f)
	} else {
		list, err = singlePluginList(f)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: CNI config %s: %v", ErrNotReady, f, err)
	}
	return list, nil
}

// singlePluginList reads a one-plugin .conf file as a list of one, the way
// container runtimes still accept them.
func singlePluginList(path string) (*libcni.NetworkConfigList, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var head struct {
		CNIVersion string `json:"cniVersion"`
		Name       string `json:"name"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, err
	}
	list, err := json.Marshal(map[string]any{
		"cniVersion": head.CNIVersion, "name": head.Name, "plugins": []json.RawMessage{raw},
	})
	if err != nil {
		return nil, err
	}
	return libcni.ConfListFromBytes(list)
}

func (m *Manager) runtimeConf(a Attachment, ifName string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: a.ID,
		NetNS:       a.NetNS,
		IfName:      ifName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", a.PodNamespace},
			{"K8S_POD_NAME", a.PodName},
			{"K8S_POD_INFRA_CONTAINER_ID", a.ID},
			{"K8S_POD_UID", a.PodUID},
		},
	}
}

// inHost runs fn (which execs plugins) in the host netns: a child process
// inherits the netns of the thread that forks it.
func (m *Manager) inHost(fn func() error) error {
	if m.cfg.HostNetNS == "" {
		return fn()
	}
	return nsutil.Do(m.cfg.HostNetNS, fn)
}

// Setup brings up loopback and the pod interface and returns the pod IP. On
// failure it undoes what it did, so a failed ADD leaks no lease.
func (m *Manager) Setup(ctx context.Context, a Attachment) (ip net.IP, err error) {
	err = m.inHost(func() error {
		ip, err = m.setup(ctx, a)
		return err
	})
	return ip, err
}

func (m *Manager) setup(ctx context.Context, a Attachment) (net.IP, error) {
	list, err := m.load()
	if err != nil {
		return nil, err
	}
	lo, err := libcni.ConfListFromBytes([]byte(loopbackConf))
	if err != nil {
		return nil, err
	}
	if _, err := m.cni.AddNetworkList(ctx, lo, m.runtimeConf(a, "lo")); err != nil {
		return nil, fmt.Errorf("CNI loopback ADD for %s: %w", a.ID, err)
	}
	res, err := m.cni.AddNetworkList(ctx, list, m.runtimeConf(a, m.cfg.IfName))
	if err != nil {
		derr := m.cni.DelNetworkList(ctx, list, m.runtimeConf(a, m.cfg.IfName))
		return nil, errors.Join(fmt.Errorf("CNI ADD %s for %s: %w", list.Name, a.ID, err), derr)
	}
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("CNI result of %s: %w", list.Name, err)
	}
	for _, ip := range r.IPs {
		if ip.Address.IP.To4() != nil {
			return ip.Address.IP, nil
		}
	}
	if len(r.IPs) > 0 {
		return r.IPs[0].Address.IP, nil
	}
	return nil, fmt.Errorf("CNI network %s returned no IP for %s", list.Name, a.ID)
}

// Teardown runs CNI DEL with the configuration the ADD used (from libcni's
// cache) when it is known, else with the current one. A missing netns is
// fine: DEL must still release the IPAM lease.
func (m *Manager) Teardown(ctx context.Context, a Attachment) error {
	return m.inHost(func() error { return m.teardown(ctx, a) })
}

func (m *Manager) teardown(ctx context.Context, a Attachment) error {
	list, err := m.cachedList(a)
	if err != nil {
		if list, err = m.load(); err != nil {
			return err
		}
	}
	if _, serr := os.Stat(a.NetNS); serr != nil {
		a.NetNS = "" // plugins clean up host side without a netns
	}
	if err := m.cni.DelNetworkList(ctx, list, m.runtimeConf(a, m.cfg.IfName)); err != nil {
		return fmt.Errorf("CNI DEL %s for %s: %w", list.Name, a.ID, err)
	}
	if a.NetNS != "" {
		lo, _ := libcni.ConfListFromBytes([]byte(loopbackConf))
		_ = m.cni.DelNetworkList(ctx, lo, m.runtimeConf(a, "lo")) // loopback has no state worth failing over
	}
	return nil
}

// cachedList returns the configuration the ADD of this attachment used.
func (m *Manager) cachedList(a Attachment) (*libcni.NetworkConfigList, error) {
	list, err := m.load()
	if err != nil {
		return nil, err
	}
	raw, _, err := m.cni.GetNetworkListCachedConfig(list, m.runtimeConf(a, m.cfg.IfName))
	if err != nil || raw == nil {
		return nil, fmt.Errorf("no cached CNI config for %s", a.ID)
	}
	return libcni.ConfListFromBytes(raw)
}
