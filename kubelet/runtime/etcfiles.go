package runtime

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	v1 "k8s.io/api/core/v1"
)

// etcMounts writes the pod's /etc/hosts and /etc/resolv.conf under
// <root-dir>/pods/<uid>/ and returns bind mounts of them, as upstream's
// kubelet does; a container mounting a volume at either path keeps it.
// The files are rewritten in place (same inode) only when their content
// changes, so running containers see the current ones.
func (r *Runtime) etcMounts(s StartSpec) ([]specs.Mount, error) {
	dir := filepath.Join(r.cfg.RootDir, "pods", string(s.Pod.UID))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	resolv, err := r.resolvConf(s.Pod)
	if err != nil {
		return nil, err
	}
	files := []struct{ target, name, content string }{
		{"/etc/hosts", "etc-hosts", hostsFile(s.Pod, s.Sandbox.IP.String())},
		{"/etc/resolv.conf", "resolv.conf", resolv},
	}
	var mounts []specs.Mount
	for _, f := range files {
		if mountsAt(s.Container, f.target) {
			continue
		}
		path := filepath.Join(dir, f.name)
		if old, err := os.ReadFile(path); err != nil || !bytes.Equal(old, []byte(f.content)) {
			if err := os.WriteFile(path, []byte(f.content), 0o644); err != nil {
				return nil, err
			}
		}
		mounts = append(mounts, specs.Mount{Destination: f.target, Type: "bind", Source: path, Options: []string{"rbind", "rprivate", "rw"}})
	}
	return mounts, nil
}

func mountsAt(c *v1.Container, path string) bool {
	for _, m := range c.VolumeMounts {
		if filepath.Clean(m.MountPath) == path {
			return true
		}
	}
	return false
}

// hostsFile is upstream's managed /etc/hosts: localhost entries, the pod's
// IP with its hostname, then hostAliases.
func hostsFile(pod *v1.Pod, ip string) string {
	var b strings.Builder
	b.WriteString("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
	hostname := pod.Name
	if pod.Spec.Hostname != "" {
		hostname = pod.Spec.Hostname
	}
	if pod.Spec.Subdomain != "" {
		fmt.Fprintf(&b, "%s\t%s.%s.%s.svc.cluster.local\t%s\n", ip, hostname, pod.Spec.Subdomain, pod.Namespace, hostname)
	} else {
		fmt.Fprintf(&b, "%s\t%s\n", ip, hostname)
	}
	if len(pod.Spec.HostAliases) > 0 {
		b.WriteString("\n# Entries added by HostAliases.\n")
		for _, a := range pod.Spec.HostAliases {
			fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
		}
	}
	return b.String()
}

// resolvConf is the node's resolv.conf (dnsPolicy Default, and ClusterFirst
// while the kubelet knows no cluster DNS, as upstream falls back) or nothing
// (dnsPolicy None), with the pod's dnsConfig added.
func (r *Runtime) resolvConf(pod *v1.Pod) (string, error) {
	var lines []string
	if pod.Spec.DNSPolicy != v1.DNSNone && r.cfg.ResolvConf != "" {
		b, err := os.ReadFile(r.cfg.ResolvConf)
		if err != nil && !os.IsNotExist(err) {
			return "", fmt.Errorf("resolv.conf for pods: %w", err)
		}
		lines = strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	}
	if c := pod.Spec.DNSConfig; c != nil {
		for _, ns := range c.Nameservers {
			lines = append(lines, "nameserver "+ns)
		}
		if len(c.Searches) > 0 {
			lines = append(lines, "search "+strings.Join(c.Searches, " "))
		}
		var opts []string
		for _, o := range c.Options {
			if o.Value != nil {
				opts = append(opts, o.Name+":"+*o.Value)
			} else {
				opts = append(opts, o.Name)
			}
		}
		if len(opts) > 0 {
			lines = append(lines, "options "+strings.Join(opts, " "))
		}
	}
	return strings.TrimLeft(strings.Join(lines, "\n")+"\n", "\n"), nil
}
