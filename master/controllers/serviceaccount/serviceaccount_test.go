package serviceaccount

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/master/controllers/ctrltest"
	"github.com/hoist-project/hoist/master/controllers/fakeapi"
)

func TestDefaultAccountPerNamespace(t *testing.T) {
	now := metav1.Now()
	client := fakeapi.New(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "dying", DeletionTimestamp: &now, Finalizers: []string{"kubernetes"}},
			Status: corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating}},
	)
	ctrltest.Start(t, client, func(f informers.SharedInformerFactory) ctrltest.Runner { return New(client, f, Config{}) })
	ctx := context.Background()
	exists := func(ns string) bool {
		_, err := client.CoreV1().ServiceAccounts(ns).Get(ctx, Default, metav1.GetOptions{})
		return err == nil
	}
	ctrltest.WaitFor(t, "default account in a", func() bool { return exists("a") })
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "b"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ctrltest.WaitFor(t, "default account in the new namespace b", func() bool { return exists("b") })
	if err := client.CoreV1().ServiceAccounts("a").Delete(ctx, Default, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ctrltest.WaitFor(t, "deleted default account recreated", func() bool { return exists("a") })
	if _, err := client.CoreV1().ServiceAccounts("dying").Get(ctx, Default, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("terminating namespace got an account: %v", err)
	}
}
