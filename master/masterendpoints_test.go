package master

import (
	"net"
	"testing"
)

// TestE2EKubectlKubernetesEndpoints checks with the real kubectl that the
// kubernetes Service's Endpoints and EndpointSlice hold the master's
// advertised address and secure port (127.0.0.1 here: a loopback-only
// master announces its loopback address), and that they and the Service
// itself come back after an operator deletes them.
func TestE2EKubectlKubernetesEndpoints(t *testing.T) {
	m := startMaster(t, "", nil)
	k := newKubectl(t, m)
	_, port, err := net.SplitHostPort(m.Serving.SecureAddress)
	if err != nil {
		t.Fatal(err)
	}
	want := "127.0.0.1:" + port
	endpoints := func() string {
		out, _ := k.try("get", "endpoints", "kubernetes", "-n", "default",
			"-o", `jsonpath={range .subsets[*]}{.addresses[*].ip}:{.ports[?(@.name=="https")].port}/{.ports[0].protocol}{end}`)
		return out
	}
	slice := func() string {
		out, _ := k.try("get", "endpointslice", "kubernetes", "-n", "default",
			"-o", `jsonpath={.metadata.labels.kubernetes\.io/service-name} {.addressType} {.endpoints[*].addresses[*]}:{.ports[0].name}:{.ports[0].port} ready={.endpoints[*].conditions.ready}`)
		return out
	}
	wantSlice := "kubernetes IPv4 127.0.0.1:https:" + port + " ready=true"
	waitFor(t, "Endpoints default/kubernetes = "+want, func() bool { return endpoints() == want+"/TCP" })
	waitFor(t, "EndpointSlice default/kubernetes = "+wantSlice, func() bool { return slice() == wantSlice })
	if out := k.run("get", "endpoints", "kubernetes", "-n", "default", "-o", `jsonpath={.metadata.labels}`); out != `{"endpointslice.kubernetes.io/skip-mirror":"true"}` {
		t.Fatalf("Endpoints labels %s", out)
	}

	k.run("delete", "endpoints", "kubernetes", "-n", "default")
	k.run("delete", "endpointslice", "kubernetes", "-n", "default")
	// The next reconcile (every 10 s) puts them back.
	waitFor(t, "Endpoints recreated", func() bool { return endpoints() == want+"/TCP" })
	waitFor(t, "EndpointSlice recreated", func() bool { return slice() == wantSlice })

	// So is the Service itself, at the range's first address again.
	clusterIP := k.run("get", "service", "kubernetes", "-n", "default", "-o", "jsonpath={.spec.clusterIP}")
	k.run("delete", "service", "kubernetes", "-n", "default")
	waitFor(t, "Service default/kubernetes recreated at "+clusterIP, func() bool {
		out, _ := k.try("get", "service", "kubernetes", "-n", "default", "-o", "jsonpath={.spec.clusterIP} {.spec.ports[0].port}")
		return out == clusterIP+" 443"
	})
}
