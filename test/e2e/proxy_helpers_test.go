package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/hoist-project/hoist/internal/cni/nodeconf"
	"github.com/hoist-project/hoist/internal/nsutil"
)

// podDial asks the netexec pod at from (reached from the netns nsPath) to
// send request to host:port tries times over proto ("http" or "udp"), each
// try a new connection or socket, as upstream's /dial. It returns the
// answers and the errors the pod saw.
func podDial(nsPath, from, proto, request, host, port string, tries int) (responses, errs []string, err error) {
	q := url.Values{"request": {request}, "protocol": {proto}, "host": {host}, "port": {port}, "tries": {fmt.Sprint(tries)}}
	body, err := getInNetns(nsPath, net.JoinHostPort(from, "8080"), "/dial?"+q.Encode())
	if err != nil {
		return nil, nil, err
	}
	var res struct{ Responses, Errors []string }
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		return nil, nil, fmt.Errorf("dial answer %q: %v", body, err)
	}
	return res.Responses, res.Errors, nil
}

// jsonpath reads one field of an object through kubectl.
func (c *testCluster) jsonpath(t *testing.T, object, path string) string {
	t.Helper()
	out, err := c.kubectl("get", object, "-o", "jsonpath="+path)
	if err != nil || out == "" {
		t.Fatalf("%s %s: %q %v", object, path, out, err)
	}
	return out
}

// nodeExec runs argv inside node's network namespace (and, in eBPF mode,
// its cgroup) through `hoist cluster exec`.
func (c *testCluster) nodeExec(node string, argv ...string) (string, error) {
	return c.hoist(append([]string{"cluster", "exec", "--data-dir", c.dir, node, "--"}, argv...)...)
}

// waitWebReady waits until the web Deployment has exactly n pods, all
// Ready and none terminating, and the web Service's EndpointSlices list
// exactly their IPs as ready; it returns the pod names.
func (c *testCluster) waitWebReady(t *testing.T, n int) []string {
	t.Helper()
	var names []string
	c.waitFor(fmt.Sprintf("%d Ready web pods that are the Service's endpoints", n), 90*time.Second, func() (bool, string) {
		pods, err := c.kubectl("get", "pods", "-l", "app=web", "-o",
			`jsonpath={range .items[*]}{.metadata.name} {.status.podIP} {.metadata.deletionTimestamp} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
		if err != nil {
			return false, err.Error()
		}
		names = names[:0]
		var ips []string
		for _, line := range strings.Split(strings.TrimSpace(pods), "\n") {
			f := strings.Fields(line)
			if len(f) != 3 || f[2] != "True" { // a deletionTimestamp makes it 4 fields
				return false, "pods:\n" + pods
			}
			names = append(names, f[0])
			ips = append(ips, f[1])
		}
		eps, err := c.kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=web", "-o",
			`jsonpath={range .items[*].endpoints[?(@.conditions.ready==true)]}{.addresses[0]}{"\n"}{end}`)
		if err != nil {
			return false, err.Error()
		}
		ready := strings.Fields(eps)
		sort.Strings(ips)
		sort.Strings(ready)
		return len(names) == n && strings.Join(ips, ",") == strings.Join(ready, ","),
			fmt.Sprintf("pods:\n%sready endpoints: %v", pods, ready)
	})
	return names
}

// getFromRoot GETs url from the test's own (root) namespace, outside every
// node; it returns the body and the connection's local address.
func getFromRoot(rawURL string) (string, string, error) {
	var local string
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, network, addr)
		if err == nil {
			local = conn.LocalAddr().(*net.TCPAddr).IP.String()
		}
		return conn, err
	}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(rawURL)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("GET %s: %s", rawURL, resp.Status)
	}
	return strings.TrimSpace(string(b)), local, nil
}

// bridgeMAC returns the MAC of the pod bridge in the node namespace nsPath.
func bridgeMAC(t *testing.T, nsPath string) string {
	t.Helper()
	var mac string
	if err := nsutil.Do(nsPath, func() error {
		l, err := netlink.LinkByName(nodeconf.BridgeName)
		if err == nil {
			mac = l.Attrs().HardwareAddr.String()
		}
		return err
	}); err != nil {
		t.Fatalf("bridge %s: %v", nodeconf.BridgeName, err)
	}
	return mac
}
