// Package flannel is flanneld, hoist's network fabric daemon: it acquires
// this node's pod subnet from a lease store, sets up the chosen backend's
// data path, writes subnet.env for the CNI meta-plugin, owns the masquerade
// rules, and keeps all of it in line with the other nodes until stopped.
// Stopping flanneld leaves the data path in place: pods keep talking while
// it restarts, and a restart with nothing changed changes nothing.
package flannel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/hoist-project/hoist/flannel/backend"
	"github.com/hoist-project/hoist/flannel/backend/hostgw"
	"github.com/hoist-project/hoist/flannel/backend/vxlan"
	"github.com/hoist-project/hoist/flannel/config"
	"github.com/hoist-project/hoist/flannel/masq"
	"github.com/hoist-project/hoist/flannel/metrics"
	"github.com/hoist-project/hoist/flannel/subnet"
	"github.com/hoist-project/hoist/flannel/subnetenv"
	"github.com/hoist-project/hoist/internal/cni/iptables"
)

// Defaults of Config.
const (
	DefaultSubnetFile = "/run/flannel/subnet.env"
	DefaultResync     = 10 * time.Second
	// DefaultClusterCIDR is the flannel network in kube mode when none is given.
	DefaultClusterCIDR = "10.244.0.0/16"
)

// Store is where the network config and the leases live: subnet/etcd, or
// subnet/kube, which reads Node objects.
type Store interface {
	NetworkConfig(ctx context.Context) (config.Config, error)
	subnet.Manager
	subnet.Watcher
}

// Config is everything flanneld needs; cmd/hoist fills it from flags.
type Config struct {
	NodeName       string     // identifies this node's lease across restarts and IP changes
	Iface          string     // public interface; empty: the one holding PublicIP, else the default route's
	PublicIP       netip.Addr // zero: the first IPv4 address of Iface
	SubnetFile     string     // default DefaultSubnetFile
	IPMasq         bool       // masquerade traffic leaving the cluster CIDR
	Resync         time.Duration
	HealthzAddress string // default metrics.DefaultAddress; "-" disables it
	Store          Store
	IPTables       iptables.Runner // default: the iptables binaries
	Log            *slog.Logger
	// Ready, if set, is called once subnet.env is written (e.g. to write the
	// CNI config only when pods can get addresses); its error stops flanneld.
	Ready func(subnetenv.Env) error
}

// Run runs flanneld until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	if err := defaults(&cfg); err != nil {
		return err
	}
	log := cfg.Log
	m := metrics.New()
	g, ctx := errgroup.WithContext(ctx)
	if cfg.HealthzAddress != "-" {
		g.Go(func() error { return m.Serve(ctx, cfg.HealthzAddress, 3*cfg.Resync+5*time.Second) })
	}
	g.Go(func() error {
		pub, err := findPublic(cfg.Iface, cfg.PublicIP)
		if err != nil {
			return err
		}
		log.Info("public interface", "iface", pub.name, "ip", pub.ip, "mtu", pub.mtu)
		if err := enableForwarding(); err != nil {
			return err
		}
		netCfg, err := networkConfig(ctx, cfg.Store, log)
		if err != nil {
			return err
		}
		env := backend.Env{
			NodeName: cfg.NodeName, IfaceName: pub.name, IfaceIndex: pub.index, IfaceMTU: pub.mtu, PublicIP: pub.ip,
			PrevSubnet: previousSubnet(cfg.SubnetFile, netCfg, log),
			Manager:    cfg.Store, Watcher: cfg.Store, Resync: cfg.Resync, Metrics: m, Log: log,
		}
		nw, err := newBackend(env, netCfg.Backend.Type).RegisterNetwork(ctx, netCfg)
		if err != nil {
			return err
		}
		if err := syncMasq(cfg, netCfg, m); err != nil {
			return err
		}
		senv := subnetenv.Env{Network: netCfg.Network, Subnet: nw.Lease().Subnet, MTU: nw.MTU(), IPMasq: cfg.IPMasq}
		if err := subnetenv.Write(cfg.SubnetFile, senv); err != nil {
			return err
		}
		log.Info("subnet.env written", "path", cfg.SubnetFile, "subnet", nw.Lease().Subnet, "mtu", nw.MTU())
		if cfg.Ready != nil {
			if err := cfg.Ready(senv); err != nil {
				return err
			}
		}
		g.Go(func() error { return nw.Run(ctx) })
		g.Go(func() error { return renewLoop(ctx, cfg.Store, nw.Lease(), m, log) })
		g.Go(func() error { return masqLoop(ctx, cfg, netCfg, m) })
		return nil
	})
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func defaults(cfg *Config) error {
	if cfg.Store == nil {
		return errors.New("flanneld: no subnet lease store configured")
	}
	if cfg.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("flanneld: no node name given and the host name is unknown: %w", err)
		}
		cfg.NodeName = h
	}
	if cfg.SubnetFile == "" {
		cfg.SubnetFile = DefaultSubnetFile
	}
	if cfg.Resync <= 0 {
		cfg.Resync = DefaultResync
	}
	if cfg.HealthzAddress == "" {
		cfg.HealthzAddress = metrics.DefaultAddress
	}
	if cfg.IPTables == nil {
		cfg.IPTables = iptables.Exec{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return nil
}

// newBackend picks the backend the network config names; Parse has
// rejected every other type already.
func newBackend(env backend.Env, typ string) backend.Backend {
	if typ == config.HostGW {
		return hostgw.New(env)
	}
	return vxlan.New(env)
}

// networkConfig waits for the store's network config, saying what is missing.
func networkConfig(ctx context.Context, s Store, log *slog.Logger) (config.Config, error) {
	backoff := 500 * time.Millisecond
	for {
		c, err := s.NetworkConfig(ctx)
		if err == nil {
			return c, nil
		}
		log.Error("waiting for the network config", "err", err)
		select {
		case <-ctx.Done():
			return c, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// previousSubnet is the subnet the last run wrote to subnet.env, if it
// belongs to the current network.
func previousSubnet(path string, netCfg config.Config, log *slog.Logger) netip.Prefix {
	e, err := subnetenv.Read(path)
	if errors.Is(err, os.ErrNotExist) {
		return netip.Prefix{}
	}
	if err != nil {
		log.Warn("ignoring unreadable subnet.env", "path", path, "err", err)
		return netip.Prefix{}
	}
	if e.Network != netCfg.Network {
		log.Warn("subnet.env is for another network; not reusing its subnet", "path", path, "had", e.Network, "now", netCfg.Network)
		return netip.Prefix{}
	}
	return e.Subnet
}

// renewLoop keeps the lease alive; it renews well before expiry and tries
// again quickly after a failure (an etcd outage), so the lease survives
// outages shorter than its TTL.
func renewLoop(ctx context.Context, s Store, l *subnet.Lease, m *metrics.Metrics, log *slog.Logger) error {
	for {
		wait := min(time.Until(l.Expiration)/4, time.Minute)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(max(wait, time.Second)):
		}
		err := s.RenewLease(ctx, l)
		if errors.Is(err, subnet.ErrLeaseGone) {
			log.Warn("subnet lease disappeared (expired or deleted); claiming it again", "subnet", l.Subnet)
			nl, aerr := s.AcquireLease(ctx, l.Attrs, l.Subnet)
			if aerr != nil {
				err = aerr
			} else if nl.Subnet != l.Subnet {
				return fmt.Errorf("subnet lease %s was lost and another node took it (this node would now get %s): restart flanneld and the node's pods", l.Subnet, nl.Subnet)
			} else {
				l.Expiration, err = nl.Expiration, nil
			}
		}
		if err != nil {
			m.BackendErrors.WithLabelValues("lease-renewal").Inc()
			log.Error("lease renewal failed; retrying", "subnet", l.Subnet, "expires", l.Expiration.Format(time.RFC3339), "err", err)
			continue
		}
		m.LeaseExpiry.Set(float64(l.Expiration.Unix()))
	}
}

func syncMasq(cfg Config, netCfg config.Config, m *metrics.Metrics) error {
	n, err := masq.Apply(cfg.IPTables, netCfg.Network, cfg.IPMasq)
	if err != nil {
		m.BackendErrors.WithLabelValues("iptables").Inc()
		return fmt.Errorf("masquerade rules: %w", err)
	}
	if n > 0 {
		m.Applied.WithLabelValues("iptables", "add").Add(float64(n))
		cfg.Log.Info("iptables chains written", "tables", n)
	}
	return nil
}

// masqLoop repairs the iptables chains every resync period.
func masqLoop(ctx context.Context, cfg Config, netCfg config.Config, m *metrics.Metrics) error {
	t := time.NewTicker(cfg.Resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		n, err := masq.Apply(cfg.IPTables, netCfg.Network, cfg.IPMasq)
		if err != nil {
			m.BackendErrors.WithLabelValues("iptables").Inc()
			cfg.Log.Error("iptables resync failed", "err", err)
			continue
		}
		if n > 0 {
			m.Applied.WithLabelValues("iptables", "add").Add(float64(n))
			m.Repaired.WithLabelValues("iptables", "add").Add(float64(n))
			cfg.Log.Info("iptables resync repaired chains", "tables", n)
		}
	}
}

// enableForwarding turns on IPv4 forwarding in this network namespace; a
// node cannot route pod traffic without it.
func enableForwarding() error {
	const path = "/proc/sys/net/ipv4/ip_forward"
	if b, err := os.ReadFile(path); err == nil && len(b) > 0 && b[0] == '1' {
		return nil
	}
	if err := os.WriteFile(path, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enable IPv4 forwarding (%s): %w", path, err)
	}
	return nil
}
