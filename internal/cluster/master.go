package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hoist-project/hoist/flannel/subnet/etcd"
	"github.com/hoist-project/hoist/master/join"
	"github.com/hoist-project/hoist/master/pki"
)

// masterArgv is the master's command line: the API on the fabric's host IP
// (reachable from the nodes and from the root namespace), embedded etcd on
// loopback, node IPAM handing out podCIDRs from the cluster CIDR.
func masterArgv(c *Config, l layout, st *State) []string {
	return []string{c.Hoist, "master", "--data-dir", l.masterDir(),
		"--secure-address", hostPort(st.HostIP, c.APIPort),
		"--etcd-client-url", fmt.Sprintf("http://127.0.0.1:%d", c.EtcdClientPort),
		"--etcd-peer-url", fmt.Sprintf("http://127.0.0.1:%d", c.EtcdPeerPort),
		"--cluster-cidr", c.ClusterCIDR, "--service-cidr", c.ServiceCIDR}
}

// flannelEtcdArgv runs Debian's etcd for flanneld's leases (--subnet-mgr
// etcd): clients on the host IP only, so the nodes reach it and nothing
// outside the fabric does.
func flannelEtcdArgv(c *Config, l layout, st *State) (argv []string, endpoint string) {
	endpoint = "http://" + hostPort(st.HostIP, c.FlannelEtcdPort)
	peer := fmt.Sprintf("http://127.0.0.1:%d", c.FlannelEtcdPeerPort)
	return []string{c.Etcd, "--name", "hoist-flannel", "--data-dir", l.flannelEtcdDir(),
		"--listen-client-urls", endpoint, "--advertise-client-urls", endpoint,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "hoist-flannel=" + peer, "--log-level", "error"}, endpoint
}

// waitMaster waits until the master serves and returns an admin client.
func waitMaster(ctx context.Context, l layout, p *started, timeout time.Duration) (kubernetes.Interface, error) {
	kc := filepath.Join(l.masterDir(), pki.AdminKubeconfigFile)
	var lastErr error = fmt.Errorf("%s not written yet", kc)
	err := poll(ctx, timeout, []*started{p}, func() bool {
		if _, err := os.Stat(kc); err != nil {
			return false
		}
		rc, err := clientcmd.BuildConfigFromFlags("", kc)
		if err != nil {
			lastErr = err
			return false
		}
		rc.Timeout = 5 * time.Second
		client, err := kubernetes.NewForConfig(rc)
		if err != nil {
			lastErr = err
			return false
		}
		if _, lastErr = client.Discovery().ServerVersion(); lastErr == nil {
			return true
		}
		return false
	})
	if err != nil {
		return nil, fmt.Errorf("master not serving: %w (last: %v)", err, lastErr)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(rc)
}

// joinCredentials reads what a node needs to join from the master's data dir.
func joinCredentials(l layout) (token, caHash string, err error) {
	if token, err = join.EnsureToken(l.masterDir()); err != nil {
		return "", "", err
	}
	caPEM, err := os.ReadFile(filepath.Join(l.masterDir(), "pki", pki.CACertFile))
	if err != nil {
		return "", "", fmt.Errorf("cluster CA: %w", err)
	}
	ca, err := pki.ParseCertPEM(caPEM)
	if err != nil {
		return "", "", fmt.Errorf("cluster CA: %w", err)
	}
	return token, pki.CACertHash(ca), nil
}

// putFlannelConfig writes flannel's network config once etcd answers.
func putFlannelConfig(ctx context.Context, c *Config, endpoint string, p *started) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	var lastErr error
	err = poll(ctx, 30*time.Second, []*started{p}, func() bool {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, lastErr = cli.Put(pctx, etcd.DefaultPrefix+"/config", flannelNetworkConfig(c))
		return lastErr == nil
	})
	if err != nil {
		return fmt.Errorf("flannel etcd at %s: %w (last: %v)", endpoint, err, lastErr)
	}
	return nil
}

// poll calls cond every 250ms until it holds, timeout passes, ctx ends or
// one of procs exits (then the error carries that process's log tail).
func poll(ctx context.Context, timeout time.Duration, procs []*started, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		for _, p := range procs {
			select {
			case <-p.exited:
				return p.exitError()
			default:
			}
		}
		if cond() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// lookEtcd finds the etcd executable for --subnet-mgr etcd.
func lookEtcd(c *Config) error {
	if c.Etcd != "" {
		return nil
	}
	p, err := exec.LookPath("etcd")
	if err != nil {
		return fmt.Errorf("--subnet-mgr etcd needs etcd on PATH: apt-get install etcd-server")
	}
	c.Etcd = p
	return nil
}
