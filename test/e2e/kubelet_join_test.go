package e2e

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hoist-project/hoist/internal/testenv"
	"github.com/hoist-project/hoist/internal/testenv/ctrdtest"
	"github.com/hoist-project/hoist/kubelet/runtime"
	"github.com/hoist-project/hoist/master/join"
)

// TestE2EKubeletJoin runs `hoist master`, then `hoist kubelet` with the
// command line the master printed: the node registers with a certificate of
// its own; a restart with a wrong token keeps using that kubeconfig (no
// re-join); a fresh node with a wrong token fails at once, naming the token.
// No CNI config: the node registers NotReady, which is all joining needs.
func TestE2EKubeletJoin(t *testing.T) {
	testenv.RequireRoot(t)
	d := ctrdtest.StartContainerd(t)
	hoist := testenv.Binary(t, "hoist")
	dir := t.TempDir()

	master := startProcess(t, "hoist master", exec.Command(hoist, "master", "--data-dir", filepath.Join(dir, "master"),
		"--secure-address", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		"--etcd-client-url", testenv.FreeLoopbackURL(t), "--etcd-peer-url", testenv.FreeLoopbackURL(t)))
	var joinArgs []string
	testenv.WaitFor(t, 90*time.Second, "hoist master prints the kubelet's join command", func() error {
		for _, line := range strings.Split(master.out.String(), "\n") {
			if f := strings.Fields(line); len(f) > 2 && f[0] == "hoist" && f[1] == "kubelet" {
				joinArgs = f[2:]
				return nil
			}
		}
		master.mustRun(t)
		return errors.New("not printed yet")
	})
	admin := adminClient(t, filepath.Join(dir, "master", "admin.kubeconfig"))
	token := flagValue(t, joinArgs, "--join-token")

	name := "hst-join-" + strings.ToLower(testenv.UniqueName(""))
	cgroupParent := testenv.UniqueName("hoist-kubepods")
	t.Cleanup(func() {
		if err := runtime.RemoveCgroupParent(cgroupParent); err != nil {
			t.Errorf("remove cgroup parent: %v", err)
		}
	})
	noCNI := t.TempDir()
	kubeletCmd := func(root string, join ...string) *exec.Cmd {
		return exec.Command(hoist, append([]string{"kubelet", "--root-dir", root, "--node-name", name,
			"--containerd-address", d.Address, "--containerd-namespace", d.Namespace,
			"--cni-conf-dir", noCNI, "--cni-bin-dir", noCNI, "--log-root", filepath.Join(root, "logs"),
			"--cgroup-parent", cgroupParent, "--image-fs-dir", d.Dir, "--resolv-conf", "-", "--node-ip", "127.0.0.1"},
			join...)...)
	}
	root := filepath.Join(dir, "kubelet")
	kubeconfig := filepath.Join(root, join.KubeconfigFile)

	// First start: joins with the printed flags and registers.
	kubelet := startProcess(t, "hoist kubelet", kubeletCmd(root, joinArgs...))
	testenv.WaitFor(t, 60*time.Second, "Node "+name+" registered", func() error {
		kubelet.mustRun(t)
		_, err := admin.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
		return err
	})
	if cn := clientCertCN(t, kubeconfig); cn != "system:node:"+name {
		t.Fatalf("%s: client certificate for %q, want system:node:%s", kubeconfig, cn, name)
	}
	joined, err := os.ReadFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kubelet.stop(t)

	// Restart with a wrong (well-formed) token: the kubeconfig is reused.
	wrong := "abcdef.0123456789abcdef"
	if wrong == token {
		t.Fatalf("the master's token is the test's wrong token %s", wrong)
	}
	wrongArgs := slices.Clone(joinArgs)
	wrongArgs[slices.Index(wrongArgs, "--join-token")+1] = wrong
	restartedAt := time.Now()
	kubelet = startProcess(t, "hoist kubelet (restarted)", kubeletCmd(root, wrongArgs...))
	testenv.WaitFor(t, 60*time.Second, "Lease of "+name+" renewed by the restarted kubelet", func() error {
		kubelet.mustRun(t)
		l, err := admin.CoordinationV1().Leases("kube-node-lease").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if l.Spec.RenewTime == nil || l.Spec.RenewTime.Before(&metav1.MicroTime{Time: restartedAt}) {
			return fmt.Errorf("renewed at %v, before the restart at %v", l.Spec.RenewTime, restartedAt)
		}
		return nil
	})
	if again, err := os.ReadFile(kubeconfig); err != nil || string(again) != string(joined) {
		t.Fatalf("the restart rewrote %s (%v): it joined again", kubeconfig, err)
	}
	if !strings.Contains(kubelet.out.String(), "not joining again") {
		t.Errorf("the restarted kubelet did not log that it reused %s:\n%s", kubeconfig, kubelet.out.String())
	}
	kubelet.stop(t)

	// A fresh node with the wrong token fails fast, naming the token.
	fresh := filepath.Join(dir, "fresh")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := kubeletCmd(fresh, wrongArgs...)
	cmd = exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || ctx.Err() != nil || !strings.Contains(string(out), "rejected the join token") {
		t.Fatalf("fresh kubelet with a wrong token: %v, want exit status 1 naming the join token:\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(fresh, join.KubeconfigFile)); !os.IsNotExist(err) {
		t.Errorf("a failed join left a kubeconfig: %v", err)
	}
}

// process is a hoist subprocess whose output is kept for the test's log.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *testenv.SyncBuffer
	done chan struct{}
	err  error // Wait's result once done is closed
}

// startProcess starts cmd; the test's cleanup stops it (SIGTERM) and logs
// its output if the test failed.
func startProcess(t *testing.T, name string, cmd *exec.Cmd) *process {
	t.Helper()
	p := &process{name: name, cmd: cmd, out: &testenv.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out.String())
		}
	})
	return p
}

// mustRun fails the test at once if the process has exited (a wait for
// what it should do would otherwise run into its timeout).
func (p *process) mustRun(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("%s exited: %v", p.name, p.err)
	default:
	}
}

// stop ends the process with SIGTERM (SIGKILL after 30s); idempotent.
func (p *process) stop(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s did not stop within 30s of SIGTERM", p.name)
	}
}

func adminClient(t *testing.T, kubeconfig string) kubernetes.Interface {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// flagValue returns the value after name in args.
func flagValue(t *testing.T, args []string, name string) string {
	t.Helper()
	i := slices.Index(args, name)
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("no %s in the printed join command %q", name, args)
	}
	return args[i+1]
}

// clientCertCN returns the common name of the current context's client
// certificate in a kubeconfig.
func clientCertCN(t *testing.T, path string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := cfg.Contexts[cfg.CurrentContext]
	if ctx == nil || cfg.AuthInfos[ctx.AuthInfo] == nil {
		t.Fatalf("%s: no user in the current context %q", path, cfg.CurrentContext)
	}
	block, _ := pem.Decode(cfg.AuthInfos[ctx.AuthInfo].ClientCertificateData)
	if block == nil {
		t.Fatalf("%s: the user %s has no client certificate", path, ctx.AuthInfo)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert.Subject.CommonName
}
