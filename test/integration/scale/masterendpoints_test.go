package scale

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/hoist-project/hoist/internal/testenv"
	"github.com/hoist-project/hoist/master/storage/storagetest"
)

// apiEndpoints renders Endpoints and EndpointSlice default/kubernetes as
// "ip:port ..." each.
func apiEndpoints(c kubernetes.Interface) (eps, slice string) {
	ctx := context.Background()
	if ep, err := c.CoreV1().Endpoints("default").Get(ctx, "kubernetes", metav1.GetOptions{}); err != nil {
		eps = err.Error()
	} else {
		var all []string
		for _, s := range ep.Subsets {
			for _, a := range s.Addresses {
				for _, p := range s.Ports {
					all = append(all, fmt.Sprintf("%s:%d", a.IP, p.Port))
				}
			}
		}
		eps = fmt.Sprint(all)
	}
	if s, err := c.DiscoveryV1().EndpointSlices("default").Get(ctx, "kubernetes", metav1.GetOptions{}); err != nil {
		slice = err.Error()
	} else {
		var all []string
		for _, e := range s.Endpoints {
			for _, a := range e.Addresses {
				for _, p := range s.Ports {
					all = append(all, fmt.Sprintf("%s:%d", a, *p.Port))
				}
			}
		}
		slice = fmt.Sprint(all)
	}
	return eps, slice
}

// TestE2ETwoMastersKubernetesEndpoints runs two masters on one etcd, at
// 127.0.0.2 and 127.0.0.3 on one port (two machines, as far as the API is
// concerned): the kubernetes Service's Endpoints and EndpointSlice list
// both; a master stopped gracefully takes itself out before it exits, and
// a killed one drops out when its etcd lease expires (TTL 15 s, checked
// every 10 s by the survivor).
func TestE2ETwoMastersKubernetesEndpoints(t *testing.T) {
	etcd := storagetest.External(t)
	port := testenv.FreePort(t)
	addr := func(ip string) string { return fmt.Sprintf("%s:%d", ip, port) }
	a := startMaster(t, "--etcd-servers", etcd, "--secure-address", addr("127.0.0.2"))
	b := startMaster(t, "--etcd-servers", etcd, "--secure-address", addr("127.0.0.3"))
	both := fmt.Sprint([]string{addr("127.0.0.2"), addr("127.0.0.3")})
	onlyA := fmt.Sprint([]string{addr("127.0.0.2")})
	want := func(c kubernetes.Interface, want string) func() (bool, string) {
		return func() (bool, string) {
			eps, slice := apiEndpoints(c)
			return eps == want && slice == want, fmt.Sprintf("Endpoints %s, EndpointSlice %s", eps, slice)
		}
	}
	// Each master reconciles at start: the second one adds itself at once.
	waitFor(t, "both masters listed", 15*time.Second, want(a.Client, both))

	start := time.Now()
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Well before its lease could expire: it removed itself.
	waitFor(t, "the stopped master gone", 5*time.Second, want(a.Client, onlyA))
	t.Logf("graceful stop: one master listed %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	b.stop()

	b.start()
	waitFor(t, "the restarted master listed again", 15*time.Second, want(a.Client, both))

	start = time.Now()
	b.kill9()
	// Expiry (15 s) plus the survivor's next reconcile (10 s), and slack.
	waitFor(t, "the killed master gone", 40*time.Second, want(a.Client, onlyA))
	gone := time.Since(start)
	t.Logf("SIGKILL: one master listed %s after the kill", gone.Round(time.Millisecond))
	if gone < 10*time.Second {
		t.Fatalf("the killed master dropped out after %s, before its 15 s lease could expire", gone)
	}
}
