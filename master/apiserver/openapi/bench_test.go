package openapi_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/hoist-project/hoist/master/apiserver/openapi"
	"github.com/hoist-project/hoist/master/registry"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
)

// BenchmarkDocuments builds and serializes the documents of every served
// group/version, as the first OpenAPI request does; it reports their total
// size.
func BenchmarkDocuments(b *testing.B) {
	var resources []openapi.Resource
	var gvs []schema.GroupVersion
	seen := map[schema.GroupVersion]bool{}
	for _, r := range registry.Resources() {
		resources = append(resources, openapi.Resource{Kind: r.GroupVersionKind(), Name: r.Name, Namespaced: r.Namespaced, Subresources: r.Subresources})
		if !seen[r.GroupVersion] {
			seen[r.GroupVersion] = true
			gvs = append(gvs, r.GroupVersion)
		}
	}
	typeOf := func(gvk schema.GroupVersionKind) reflect.Type {
		obj, err := scheme.Scheme.New(gvk)
		if err != nil {
			return nil
		}
		return reflect.TypeOf(obj)
	}
	var size int
	for i := 0; i < b.N; i++ {
		size = 0
		for _, gv := range gvs {
			data, err := json.Marshal(openapi.Document("Kubernetes", "v1.32.0", gv, resources, typeOf))
			if err != nil {
				b.Fatal(err)
			}
			size += len(data)
		}
	}
	b.ReportMetric(float64(size), "bytes/all-docs")
}
