package master

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const cmBase = "/api/v1/namespaces/default/configmaps"

// createOwned creates ConfigMap name owned by the owners (name → uid),
// returning its UID.
func createOwned(t *testing.T, api *testMaster, name string, block bool, owners map[string]string) string {
	t.Helper()
	var refs []map[string]any
	for n, uid := range owners {
		refs = append(refs, map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "name": n, "uid": uid, "blockOwnerDeletion": block})
	}
	body, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name, "ownerReferences": refs}})
	r := api.do(t, "POST", api.URL+cmBase, "application/json", body)
	wantCode(t, "create "+name, r, 201)
	return r.json(t)["metadata"].(map[string]any)["uid"].(string)
}

func metaOf(t *testing.T, r response) map[string]any {
	t.Helper()
	return r.json(t)["metadata"].(map[string]any)
}

func finalizersOf(m map[string]any) []string {
	var out []string
	fs, _ := m["finalizers"].([]any)
	for _, f := range fs {
		out = append(out, f.(string))
	}
	return out
}

func deleteWith(t *testing.T, api *testMaster, name, policy string) response {
	t.Helper()
	body := fmt.Sprintf(`{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":%q}`, policy)
	return api.do(t, "DELETE", api.URL+cmBase+"/"+name, "application/json", []byte(body))
}

// TestIntegrationDeletePropagationFinalizers: without a garbage collector
// the API marks Orphan and Foreground deletions with their finalizers,
// and Background clears them again.
func TestIntegrationDeletePropagationFinalizers(t *testing.T) {
	api := startMaster(t, "", func(c *Config) { c.DisableControllers = []string{"garbagecollector"} })
	createOwned(t, api, "o", false, nil)

	r := deleteWith(t, api, "o", "Orphan")
	wantCode(t, "orphan delete", r, 200)
	m := metaOf(t, r)
	if m["deletionTimestamp"] == nil || !slices.Equal(finalizersOf(m), []string{"orphan"}) {
		t.Fatalf("after Orphan delete: %v", m)
	}
	r = deleteWith(t, api, "o", "Foreground")
	wantCode(t, "foreground delete", r, 200)
	if f := finalizersOf(metaOf(t, r)); !slices.Equal(f, []string{"foregroundDeletion"}) {
		t.Fatalf("finalizers after Foreground re-delete: %v", f)
	}
	wantCode(t, "still there", api.do(t, "GET", api.URL+cmBase+"/o", "", nil), 200)
	// Background drops both GC finalizers, and with none left the object goes.
	wantCode(t, "background delete", deleteWith(t, api, "o", "Background"), 200)
	wantCode(t, "gone after background", api.do(t, "GET", api.URL+cmBase+"/o", "", nil), 404)

	createOwned(t, api, "p", false, nil)
	r = deleteWith(t, api, "p", "Sideways")
	wantCode(t, "invalid policy", r, 400)
	r = api.do(t, "DELETE", api.URL+cmBase+"/p", "application/json",
		[]byte(`{"orphanDependents":true,"propagationPolicy":"Orphan"}`))
	wantCode(t, "both orphanDependents and propagationPolicy", r, 400)
	r = api.do(t, "DELETE", api.URL+cmBase+"/p", "application/json", []byte(`{"orphanDependents":true}`))
	wantCode(t, "orphanDependents", r, 200)
	if f := finalizersOf(metaOf(t, r)); !slices.Equal(f, []string{"orphan"}) {
		t.Fatalf("finalizers after orphanDependents=true: %v", f)
	}
}

// TestIntegrationGarbageCollection runs the three policies against the
// master's own garbage collector.
func TestIntegrationGarbageCollection(t *testing.T) {
	api := startMaster(t, "", nil)
	exists := func(name string) bool {
		r := api.do(t, "GET", api.URL+cmBase+"/"+name, "", nil)
		if r.code != 200 && r.code != 404 {
			t.Fatalf("get %s: HTTP %d %s", name, r.code, r.body)
		}
		return r.code == 200
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// Background: the owner goes at once, its dependent after it.
	uid := createOwned(t, api, "bg-owner", false, nil)
	createOwned(t, api, "bg-dep", true, map[string]string{"bg-owner": uid})
	wantCode(t, "background delete", deleteWith(t, api, "bg-owner", "Background"), 200)
	waitFor("background dependent deleted", func() bool { return !exists("bg-dep") })

	// A dependent whose owner never existed (wrong UID) is garbage too.
	createOwned(t, api, "dangling", false, map[string]string{"nobody": "00000000-0000-0000-0000-000000000000"})
	waitFor("dependent of a missing owner deleted", func() bool { return !exists("dangling") })

	// Orphan: the owner goes, its dependent stays without the reference.
	uid = createOwned(t, api, "or-owner", false, nil)
	createOwned(t, api, "or-dep", true, map[string]string{"or-owner": uid})
	wantCode(t, "orphan delete", deleteWith(t, api, "or-owner", "Orphan"), 200)
	waitFor("orphaned owner gone", func() bool { return !exists("or-owner") })
	r := api.do(t, "GET", api.URL+cmBase+"/or-dep", "", nil)
	wantCode(t, "orphaned dependent kept", r, 200)
	if refs := metaOf(t, r)["ownerReferences"]; refs != nil {
		t.Fatalf("orphaned dependent still owned: %v", refs)
	}

	// Foreground: the dependent goes first, then the owner.
	uid = createOwned(t, api, "fg-owner", false, nil)
	createOwned(t, api, "fg-dep", true, map[string]string{"fg-owner": uid})
	r = deleteWith(t, api, "fg-owner", "Foreground")
	wantCode(t, "foreground delete", r, 200)
	if f := finalizersOf(metaOf(t, r)); !slices.Contains(f, "foregroundDeletion") {
		t.Fatalf("foreground delete left finalizers %v", f)
	}
	waitFor("foreground owner gone", func() bool { return !exists("fg-owner") })
	if exists("fg-dep") {
		t.Fatal("foreground owner went before its blocking dependent")
	}
}

// TestIntegrationDeleteOptionsProtobuf checks that DeleteOptions sent the way
// client-go's typed clients send them (protobuf) are decoded and honoured.
func TestIntegrationDeleteOptionsProtobuf(t *testing.T) {
	api := startMaster(t, "", nil)
	rc := rest.CopyConfig(api.Rest)
	rc.ContentType = "application/vnd.kubernetes.protobuf"
	client := kubernetes.NewForConfigOrDie(rc)
	ctx := context.Background()
	cm, err := client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "pb"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wrong := types.UID("not-" + string(cm.UID))
	err = client.CoreV1().ConfigMaps("default").Delete(ctx, "pb", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &wrong}})
	if !apierrors.IsConflict(err) {
		t.Fatalf("delete with a wrong UID precondition = %v, want 409 Conflict", err)
	}
	if err := client.CoreV1().ConfigMaps("default").Delete(ctx, "pb", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cm.UID}}); err != nil {
		t.Fatalf("delete with the right UID precondition: %v", err)
	}
}
