package kube

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
)

// TestNodeListWatchLogsOutageOnce: failing list/watch calls log one line
// per outage (with the error), the first success after it one more.
func TestNodeListWatchLogsOutageOnce(t *testing.T) {
	client := fake.NewClientset()
	down := true
	refuse := func(k8stesting.Action) (bool, runtime.Object, error) {
		if down {
			return true, nil, errors.New(`Get "https://10.0.0.1:6443/api/v1/nodes": connect: connection refused`)
		}
		return false, nil, nil
	}
	client.PrependReactor("list", "nodes", refuse)
	client.PrependWatchReactor("nodes", func(a k8stesting.Action) (bool, watch.Interface, error) {
		handled, _, err := refuse(a)
		return handled, nil, err
	})
	logs := &syncBuffer{}
	lw := cache.ToListerWatcherWithContext(nodeListWatch(client, &reach{log: slog.New(slog.NewTextHandler(logs, nil))}))
	call := func() error {
		if _, err := lw.ListWithContext(context.Background(), metav1.ListOptions{}); err != nil {
			return err
		}
		w, err := lw.WatchWithContext(context.Background(), metav1.ListOptions{})
		if err == nil {
			w.Stop()
		}
		return err
	}
	count := func(s string) int { return strings.Count(logs.String(), s) }
	for range 3 {
		if err := call(); err == nil {
			t.Fatal("list/watch succeeded while the API is down")
		}
	}
	if n := count("cannot reach the API server"); n != 1 || !strings.Contains(logs.String(), "https://10.0.0.1:6443") {
		t.Fatalf("outage logged %d times (want 1, with the error):\n%s", n, logs)
	}
	down = false
	for range 2 {
		if err := call(); err != nil {
			t.Fatal(err)
		}
	}
	if n := count("API server reachable again"); n != 1 {
		t.Fatalf("recovery logged %d times, want 1:\n%s", n, logs)
	}
	down = true
	_ = call()
	if n := count("cannot reach the API server"); n != 2 {
		t.Fatalf("a second outage logged %d lines in all, want 2:\n%s", n, logs)
	}
}
