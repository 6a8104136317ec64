package flannel_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hoist-project/hoist/flannel/internal/etcdtest"
	"github.com/hoist-project/hoist/flannel/subnet"
	"github.com/hoist-project/hoist/flannel/subnet/kube"
	"github.com/hoist-project/hoist/flannel/subnetenv"
	"github.com/hoist-project/hoist/internal/fabric"
)

// store is a subnet manager as the fabric scenario drives it: the flags a
// node's flanneld needs, what the store must hold for a node, and leases
// (or Nodes) written and deleted behind the daemons' backs. Both stores
// keep their state in an etcd the scenario can take down.
type store interface {
	flags(t *testing.T, n fabric.Node) []string
	checkLease(t *testing.T, n fabric.Node, env subnetenv.Env)
	addPeer(t *testing.T, name string, sn netip.Prefix, publicIP netip.Addr, backend string)
	removeNode(t *testing.T, name string, sn netip.Prefix)
	etcd() *etcdtest.Server
	// renewsWithinTest: etcd mode renews a 10 s lease every 2.5 s; kube
	// mode re-checks its Node once a minute, too slow to watch here.
	renewsWithinTest() bool
}

// peerData is the backend data a hand-made peer publishes.
func peerData(backend string) string {
	if backend == "vxlan" {
		return `{"VNI":1,"VtepMAC":"02:00:00:00:00:99"}`
	}
	return "null"
}

// etcdStore is upstream's etcd layout on Debian's etcd, reachable from the
// node namespaces on the fabric's host IP.
type etcdStore struct{ srv *etcdtest.Server }

func newEtcdStore(t *testing.T, f *fabric.Fabric, backendJSON string) *etcdStore {
	s := &etcdStore{srv: etcdtest.Start(t, f.HostIP())}
	s.srv.Put("/coreos.com/network/config", `{"Network":"10.244.0.0/16","Backend":`+backendJSON+`}`)
	return s
}

func (s *etcdStore) flags(*testing.T, fabric.Node) []string {
	return []string{"--etcd-endpoints", s.srv.Endpoint, "--iface", "eth0", "--subnet-lease-ttl", "10s"}
}

func (s *etcdStore) checkLease(t *testing.T, n fabric.Node, env subnetenv.Env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := s.srv.Client().Get(ctx, "/coreos.com/network/subnets/"+subnet.KeyName(env.Subnet.Masked()))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("%s: lease for %s: %v, %v", n.Name, env.Subnet, resp, err)
	}
	v := string(resp.Kvs[0].Value)
	if !strings.Contains(v, `"PublicIP":"`+n.IP.String()+`"`) || !strings.Contains(v, `"NodeName":"`+n.Name+`"`) || resp.Kvs[0].Lease == 0 {
		t.Fatalf("%s: stored lease %s (etcd lease %d)", n.Name, v, resp.Kvs[0].Lease)
	}
}

func (s *etcdStore) addPeer(t *testing.T, name string, sn netip.Prefix, ip netip.Addr, backend string) {
	s.srv.Put("/coreos.com/network/subnets/"+subnet.KeyName(sn),
		fmt.Sprintf(`{"PublicIP":%q,"BackendType":%q,"BackendData":%s,"NodeName":%q}`, ip, backend, peerData(backend), name))
}

func (s *etcdStore) removeNode(_ *testing.T, _ string, sn netip.Prefix) {
	s.srv.Delete("/coreos.com/network/subnets/" + subnet.KeyName(sn.Masked()))
}

func (s *etcdStore) etcd() *etcdtest.Server { return s.srv }
func (s *etcdStore) renewsWithinTest() bool { return true }

// kubeStore is a real hoist master (node IPAM on 10.244.0.0/16) on its
// own etcd; every node joins with its own credentials.
type kubeStore struct {
	srv     *etcdtest.Server
	m       *kubeMaster
	backend string
}

func newKubeStore(t *testing.T, f *fabric.Fabric, backend string) *kubeStore {
	srv := etcdtest.Start(t, netip.Addr{})
	return &kubeStore{srv: srv, m: startKubeMaster(t, f, srv.Local), backend: backend}
}

func (s *kubeStore) flags(t *testing.T, n fabric.Node) []string {
	return []string{"--subnet-mgr", "kube", "--kubeconfig", s.m.joinNode(t, n.Name), "--public-ip", n.IP.String(), "--backend", s.backend}
}

func (s *kubeStore) checkLease(t *testing.T, n fabric.Node, env subnetenv.Env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	node, err := s.m.admin.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if env.Subnet.Masked().String() != node.Spec.PodCIDR {
		t.Fatalf("%s: subnet.env subnet %s, spec.podCIDR %q", n.Name, env.Subnet, node.Spec.PodCIDR)
	}
	a := node.Annotations
	if a[kube.AnnotationKubeManaged] != "true" || a[kube.AnnotationPublicIP] != n.IP.String() || a[kube.AnnotationBackendType] != s.backend ||
		(s.backend == "vxlan" && !strings.Contains(a[kube.AnnotationBackendData], `"VtepMAC"`)) {
		t.Fatalf("%s: annotations %v", n.Name, a)
	}
}

func (s *kubeStore) addPeer(t *testing.T, name string, sn netip.Prefix, ip netip.Addr, backend string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{
			kube.AnnotationKubeManaged: "true", kube.AnnotationPublicIP: ip.String(),
			kube.AnnotationBackendType: backend, kube.AnnotationBackendData: peerData(backend)}},
		Spec: corev1.NodeSpec{PodCIDR: sn.String(), PodCIDRs: []string{sn.String()}},
	}
	if _, err := s.m.admin.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create node %s: %v", name, err)
	}
}

func (s *kubeStore) removeNode(t *testing.T, name string, _ netip.Prefix) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.m.admin.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete node %s: %v", name, err)
	}
}

func (s *kubeStore) etcd() *etcdtest.Server { return s.srv }
func (s *kubeStore) renewsWithinTest() bool { return false }
