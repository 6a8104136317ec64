package kubelet

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/hoist-project/hoist/internal/testenv"
	kimages "github.com/hoist-project/hoist/kubelet/images"
	"github.com/hoist-project/hoist/packaging/images"
)

// TestIntegrationImages pulls from Debian's docker-registry on loopback:
// policies, a registry requiring a login (imagePullSecrets), ErrImagePull
// then ImagePullBackOff, ErrImageNeverPull, pull events, and image GC
// forced by thresholds (an image is removed once unused; air-gap and in-use
// images never are).
func TestIntegrationImages(t *testing.T) {
	testenv.RequireCommand(t, "docker-registry", "docker-registry")
	s := newSuite(t)
	reg, err := images.StartRegistry(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	if _, err := reg.Push(context.Background(), s.imageDir); err != nil {
		t.Fatal(err)
	}
	gcImage := pushVariant(t, reg.Addr()+"/"+images.TestboxImage, reg.Addr()+"/hoist.test/gcme:1.0")
	authed := startAuthProxy(t, reg.Addr(), "alice", "s3cret")

	n := s.newNode(t, 19)
	client := fake.NewClientset()
	n.cfg.Client = client
	n.cfg.ImagePullBackoff = kimages.BackoffPolicy{Initial: 3 * time.Second, Max: 6 * time.Second}
	// Force image GC: any usage is above 1%; images unused for 3 s go.
	n.cfg.ImageGCHighThresholdPercent, n.cfg.ImageGCLowThresholdPercent = 1, 1
	n.cfg.ImageGCPeriod, n.cfg.ImageGCMinAge, n.cfg.ImageFSDir = 300*time.Millisecond, 3*time.Second, s.ctrd.Dir
	ctx := context.Background()
	t.Cleanup(func() {
		pods, _ := client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		for _, p := range pods.Items {
			_ = client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{})
		}
	})
	regcred := &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "regcred", Namespace: "default"}, Type: v1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{v1.DockerConfigJsonKey: []byte(fmt.Sprintf(`{"auths":{"http://%s":{"auth":%q}}}`,
			authed, base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))))}}
	if _, err := client.CoreV1().Secrets("default").Create(ctx, regcred, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	n.start()
	create := func(name, image string, policy v1.PullPolicy, secrets ...string) {
		t.Helper()
		grace := int64(1)
		pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(testenv.UniqueName("uid-" + name))},
			Spec: v1.PodSpec{NodeName: n.name, TerminationGracePeriodSeconds: &grace, Containers: []v1.Container{{
				Name: "c", Image: image, ImagePullPolicy: policy, Args: []string{"sleep"},
			}}}}
		for _, s := range secrets {
			pod.Spec.ImagePullSecrets = append(pod.Spec.ImagePullSecrets, v1.LocalObjectReference{Name: s})
		}
		if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	remove := func(name string) {
		t.Helper()
		if err := client.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	running := func(name string) {
		t.Helper()
		waitFor(t, 60*time.Second, name+" Running", func() (bool, string) {
			st, _ := n.statuses.get(name)
			return st.Phase == v1.PodRunning && len(st.ContainerStatuses) == 1 && st.ContainerStatuses[0].State.Running != nil, fmt.Sprintf("%+v", st.ContainerStatuses)
		})
	}
	waitingSeq := func(name string, want ...string) {
		t.Helper()
		waitFor(t, 60*time.Second, fmt.Sprintf("%s waiting %v", name, want), func() (bool, string) {
			h := n.statuses.waitingHistory(name)
			for _, w := range want { // want is a subsequence of h
				i := slices.Index(h, w)
				if i < 0 {
					return false, fmt.Sprint(n.statuses.waitingHistory(name))
				}
				h = h[i+1:]
			}
			return true, ""
		})
	}

	pulled := reg.Addr() + "/" + images.TestboxImage
	create("pulled", pulled, v1.PullIfNotPresent)
	create("missing", reg.Addr()+"/hoist.test/nope:1.0", "")
	create("never", reg.Addr()+"/hoist.test/absent:1.0", v1.PullNever)
	create("noauth", authed+"/"+images.TestboxImage, v1.PullAlways)
	running("pulled")
	waitingSeq("missing", kimages.ReasonErrImagePull, kimages.ReasonImagePullBackOff, kimages.ReasonErrImagePull)
	waitingSeq("never", kimages.ReasonErrImageNeverPull)
	waitingSeq("noauth", kimages.ReasonErrImagePull)
	if st, _ := n.statuses.get("noauth"); !strings.Contains(st.ContainerStatuses[0].State.Waiting.Message, "authorization failed") {
		t.Errorf("a pull without login must say so: %q", st.ContainerStatuses[0].State.Waiting.Message)
	}
	remove("noauth") // its retries must not share a pull with the next pod's
	create("authed", authed+"/"+images.TestboxImage, v1.PullAlways, "regcred")
	running("authed")
	waitFor(t, 30*time.Second, "pull events", func() (bool, string) {
		evs, _ := client.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		var got []string
		seen := map[string]bool{}
		for _, e := range evs.Items {
			got = append(got, e.InvolvedObject.Name+" "+e.Reason+": "+e.Message)
			seen[e.InvolvedObject.Name+"/"+e.Reason] = true
			if e.Reason == "Pulled" && e.InvolvedObject.Name == "pulled" && !strings.Contains(e.Message, "Successfully pulled image \""+pulled+"\" in ") {
				return false, "bad Pulled message: " + e.Message
			}
		}
		return seen["pulled/Pulling"] && seen["pulled/Pulled"] && seen["missing/Failed"] && seen["missing/BackOff"] && seen["never/ErrImageNeverPull"],
			strings.Join(got, "\n")
	})

	// Image GC: gcme is kept while its pod runs, removed once it is gone.
	create("gc", gcImage, v1.PullIfNotPresent)
	running("gc")
	hasImage := func(ref string) bool {
		_, err := s.ctrd.Client().ImageService().Get(n.ctx(), ref)
		return err == nil
	}
	// In use past its minimum age and several GC rounds, it stays.
	st, _ := n.statuses.get("gc")
	started := st.ContainerStatuses[0].State.Running.StartedAt.Time
	waitFor(t, 30*time.Second, "gc image older than its minimum age", func() (bool, string) {
		return time.Since(started) > n.cfg.ImageGCMinAge+5*n.cfg.ImageGCPeriod, ""
	})
	if !hasImage(gcImage) {
		t.Fatalf("image GC removed %s while a container uses it", gcImage)
	}
	remove("gc")
	waitFor(t, 60*time.Second, "unused image garbage-collected", func() (bool, string) {
		return !hasImage(gcImage), "still there"
	})
	for _, ref := range []string{images.PauseImage, images.TestboxImage, pulled} {
		if !hasImage(ref) {
			t.Errorf("image GC removed %s (air-gap or in use)", ref)
		}
	}
	for _, name := range []string{"pulled", "missing", "never", "authed"} {
		remove(name)
	}
	n.waitClean(60 * time.Second)
}

// pushVariant pushes src under dst with a changed config, so dst has its
// own digest (shares no content name with the air-gap images).
func pushVariant(t *testing.T, src, dst string) string {
	t.Helper()
	sref, err := name.ParseReference(src, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(sref)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Config.Labels = map[string]string{"io.hoist.test": "gc"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	dref, err := name.NewTag(dst, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(dref, img); err != nil {
		t.Fatal(err)
	}
	return dst
}

// startAuthProxy serves the registry at upstream on a loopback port behind
// HTTP basic auth, as docker-registry's htpasswd auth does, and returns its
// host:port.
func startAuthProxy(t *testing.T, upstream, user, pass string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: upstream})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="hoist-test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		proxy.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}
