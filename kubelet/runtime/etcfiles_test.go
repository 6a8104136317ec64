package runtime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
)

func TestHostsFile(t *testing.T) {
	pod := &v1.Pod{}
	pod.Name, pod.Namespace = "web", "ns"
	pod.Spec.HostAliases = []v1.HostAlias{{IP: "10.1.2.3", Hostnames: []string{"a", "b"}}}
	got := hostsFile(pod, "10.250.0.5")
	for _, want := range []string{"127.0.0.1\tlocalhost\n", "10.250.0.5\tweb\n", "10.1.2.3\ta\tb\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("hosts file lacks %q:\n%s", want, got)
		}
	}
	pod.Spec.Hostname, pod.Spec.Subdomain = "h", "sub"
	if got := hostsFile(pod, "10.250.0.5"); !strings.Contains(got, "10.250.0.5\th.sub.ns.svc.cluster.local\th\n") {
		t.Errorf("subdomain entry missing:\n%s", got)
	}
}

func TestResolvConf(t *testing.T) {
	host := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(host, []byte("nameserver 192.0.2.53\nsearch lan\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &Runtime{cfg: Config{ResolvConf: host}}
	ndots := "2"
	pod := &v1.Pod{}
	pod.Spec.DNSConfig = &v1.PodDNSConfig{Nameservers: []string{"192.0.2.1"}, Searches: []string{"x.y"},
		Options: []v1.PodDNSConfigOption{{Name: "ndots", Value: &ndots}, {Name: "edns0"}}}
	got, err := r.resolvConf(pod)
	want := "nameserver 192.0.2.53\nsearch lan\nnameserver 192.0.2.1\nsearch x.y\noptions ndots:2 edns0\n"
	if err != nil || got != want {
		t.Errorf("Default policy: %q, %v; want %q", got, err, want)
	}
	pod.Spec.DNSPolicy = v1.DNSNone
	got, _ = r.resolvConf(pod)
	if want := "nameserver 192.0.2.1\nsearch x.y\noptions ndots:2 edns0\n"; got != want {
		t.Errorf("None policy: %q, want %q", got, want)
	}
}
