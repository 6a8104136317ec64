package flannel_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/hoist-project/hoist/flannel/subnetenv"
	"github.com/hoist-project/hoist/internal/cni/plugintest"
	"github.com/hoist-project/hoist/internal/fabric"
	"github.com/hoist-project/hoist/internal/nsutil"
	"github.com/hoist-project/hoist/internal/testenv"
)

// flanneld is one node's daemon, run from the built binary inside the node namespace.
type flanneld struct {
	t          *testing.T
	f          *fabric.Fabric
	node       fabric.Node
	args       []string
	subnetFile string
	logPath    string
	cmd        *exec.Cmd
	done       chan struct{}
}

// newFlanneld prepares flanneld for node with the common flags (1 s
// resync, health server on the node's loopback) plus storeFlags; later
// flags override earlier ones.
func newFlanneld(t *testing.T, f *fabric.Fabric, node fabric.Node, storeFlags ...string) *flanneld {
	dir := filepath.Join(t.TempDir(), node.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d := &flanneld{t: t, f: f, node: node, subnetFile: filepath.Join(dir, "subnet.env"), logPath: filepath.Join(dir, "flanneld.log")}
	d.args = append([]string{testenv.Binary(t, "hoist"), "flanneld", "--node-name", node.Name,
		"--subnet-file", d.subnetFile, "--resync-interval", "1s", "--healthz-address", "127.0.0.1:10267"}, storeFlags...)
	t.Cleanup(func() {
		d.Kill()
		if t.Failed() {
			log, _ := os.ReadFile(d.logPath)
			t.Logf("flanneld %s log:\n%s", node.Name, lastLines(string(log), 40))
		}
	})
	return d
}

func (d *flanneld) Start() {
	d.t.Helper()
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.t.Fatal(err)
	}
	defer logf.Close()
	d.cmd = d.f.Command(context.Background(), d.node, d.args...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		d.t.Fatalf("start flanneld on %s: %v", d.node.Name, err)
	}
	d.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(d.cmd, d.done)
}

// Kill is kill -9 (`ip netns exec` execs flanneld, so the pid is flanneld's).
func (d *flanneld) Kill() {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
	d.cmd = nil
}

// Subnet waits for subnet.env and returns it.
func (d *flanneld) Env() subnetenv.Env {
	d.t.Helper()
	var env subnetenv.Env
	testenv.WaitFor(d.t, 20*time.Second, "subnet.env of "+d.node.Name, func() error {
		var err error
		env, err = subnetenv.Read(d.subnetFile)
		return err
	})
	return env
}

// Get fetches a path of the node's health/metrics server. The connection
// is dialed inside the node namespace (http.Transport would dial on another
// thread, outside it).
func (d *flanneld) Get(path string) (int, string, error) {
	var c net.Conn
	if err := d.f.Do(d.node, func() (err error) {
		c, err = net.DialTimeout("tcp", "127.0.0.1:10267", 2*time.Second)
		return err
	}); err != nil {
		return 0, "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:10267"+path, nil)
	req.Close = true
	if err := req.Write(c); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// WaitHealthy waits for /healthz to answer 200.
func (d *flanneld) WaitHealthy() {
	d.t.Helper()
	testenv.WaitFor(d.t, 20*time.Second, "flanneld healthy on "+d.node.Name, func() error {
		code, body, err := d.Get("/healthz")
		if err == nil && code != 200 {
			err = fmt.Errorf("%d %s", code, body)
		}
		return err
	})
}

// Metric returns the sum of the samples of a metric family (0 if absent).
func (d *flanneld) Metric(name string) float64 {
	d.t.Helper()
	_, body, err := d.Get("/metrics")
	if err != nil {
		d.t.Fatalf("metrics of %s: %v", d.node.Name, err)
	}
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			var v float64
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			sum += v
		}
	}
	return sum
}

// pod is a network namespace attached to its node by the flannel CNI
// meta-plugin (bridge hoist-cni0 + host-local from the node's subnet.env),
// exactly as the kubelet attaches pods.
type pod struct {
	Path string
	IP   netip.Addr
}

// addPod creates a pod netns and runs the built cni/flannel ADD for it
// inside node's namespace.
func addPod(t *testing.T, f *fabric.Fabric, node fabric.Node, subnetFile string) pod {
	t.Helper()
	name := fabric.NetnsPrefix + f.Name() + "-p" + strings.TrimPrefix(node.Name, "n")
	path, err := nsutil.CreateNamed(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nsutil.DeleteNamed(name) })
	binDir := plugintest.HoistPlugins(t)
	if bin := testenv.Binary(t, "cni/flannel"); filepath.Dir(bin) != binDir {
		t.Fatalf("flannel plugin built into %s, the other plugins into %s", bin, binDir)
	}
	dir := t.TempDir()
	e := (&plugintest.Env{HostNS: node.NetnsPath, DataDir: filepath.Join(dir, "ipam"), BinDir: binDir}).For(t)
	conf := plugintest.Conf{"cniVersion": "1.0.0", "name": "hoist-pods", "type": "flannel",
		"subnetFile": subnetFile, "dataDir": filepath.Join(dir, "flannel"),
		"delegate": map[string]any{"bridge": "hoist-cni0", "isDefaultGateway": true},
		"ipam":     map[string]any{"dataDir": e.DataDir}}
	out := e.MustExec(plugintest.Call{Plugin: "flannel", Command: "ADD", ContainerID: name, Netns: path, Config: conf.Bytes(t)})
	var res current.Result
	if err := json.Unmarshal(out, &res); err != nil || len(res.IPs) == 0 {
		t.Fatalf("flannel ADD on %s: result %s: %v", node.Name, out, err)
	}
	ip, _ := netip.AddrFromSlice(res.IPs[0].Address.IP.To4())
	return pod{Path: path, IP: ip}
}

// serveRemoteAddr runs a TCP server in nsPath on :7000 that answers every
// line with the connection's remote IP (so masquerading is visible).
func serveRemoteAddr(t *testing.T, nsPath string) {
	t.Helper()
	var l net.Listener
	if err := nsutil.Do(nsPath, func() (err error) { l, err = net.Listen("tcp", ":7000"); return err }); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				remote := c.RemoteAddr().(*net.TCPAddr).IP.String()
				r := bufio.NewReader(c)
				for {
					if _, err := r.ReadString('\n'); err != nil {
						return
					}
					if _, err := fmt.Fprintln(c, remote); err != nil {
						return
					}
				}
			}()
		}
	}()
}

// serveUDPRemoteAddr answers every datagram to :7001 in nsPath with the sender's IP.
func serveUDPRemoteAddr(t *testing.T, nsPath string) {
	t.Helper()
	var pc net.PacketConn
	if err := nsutil.Do(nsPath, func() (err error) { pc, err = net.ListenPacket("udp4", ":7001"); return err }); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { pc.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte(from.(*net.UDPAddr).IP.String()), from)
		}
	}()
}

// udpSeenAs sends a datagram from nsPath to the UDP server at to and
// returns the source IP the server saw.
func udpSeenAs(nsPath string, to netip.Addr) (string, error) {
	var c net.Conn
	if err := nsutil.Do(nsPath, func() (err error) {
		c, err = net.Dial("udp4", netip.AddrPortFrom(to, 7001).String())
		return err
	}); err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("who")); err != nil {
		return "", err
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

// dial opens a TCP connection from inside nsPath.
func dial(nsPath string, to netip.Addr) (net.Conn, error) {
	var c net.Conn
	err := nsutil.Do(nsPath, func() (err error) {
		c, err = net.DialTimeout("tcp", netip.AddrPortFrom(to, 7000).String(), 2*time.Second)
		return err
	})
	return c, err
}

// ask sends one line on c and returns the answer (the remote IP the server saw).
func ask(c net.Conn) (string, error) {
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := fmt.Fprintln(c, "who"); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// seenAs connects from nsPath to the server at to and returns the source IP it saw.
func seenAs(nsPath string, to netip.Addr) (string, error) {
	c, err := dial(nsPath, to)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return ask(c)
}

// runIn runs argv inside the namespace at nsPath (forked from a thread in
// it: no `ip netns exec`, which remounts /sys) or fails the test.
func runIn(t *testing.T, nsPath string, argv ...string) {
	t.Helper()
	var out []byte
	err := nsutil.Do(nsPath, func() (err error) { out, err = exec.Command(argv[0], argv[1:]...).CombinedOutput(); return err })
	if err != nil {
		t.Fatalf("%v in %s: %v: %s", argv, nsPath, err, out)
	}
}

func mustExec(t *testing.T, f *fabric.Fabric, node fabric.Node, argv ...string) string {
	t.Helper()
	out, err := f.Exec(context.Background(), node, argv...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
