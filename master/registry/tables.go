package registry

import (
	"fmt"
	"strings"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Table views of the kinds without other per-kind behaviour.

func withTable(r *Resource, cols []metav1.TableColumnDefinition, row func(runtime.Object) []any) *Resource {
	r.Columns, r.Row = cols, row
	return r
}

func configMaps() *Resource {
	return withTable(plain(coreV1, "ConfigMap", "configmaps", "configmap", true, []string{"cm"}, nil),
		[]metav1.TableColumnDefinition{colName, col("Data", "string"), colAge},
		func(o runtime.Object) []any {
			c := o.(*corev1.ConfigMap)
			return []any{c.Name, fmt.Sprint(len(c.Data) + len(c.BinaryData)), age(o)}
		})
}

func serviceAccounts() *Resource {
	r := withTable(plain(coreV1, "ServiceAccount", "serviceaccounts", "serviceaccount", true, []string{"sa"}, nil),
		[]metav1.TableColumnDefinition{colName, col("Secrets", "string"), colAge},
		func(o runtime.Object) []any {
			s := o.(*corev1.ServiceAccount)
			return []any{s.Name, fmt.Sprint(len(s.Secrets)), age(o)}
		})
	r.Subresources = []string{"token"}
	return r
}

func endpoints() *Resource {
	return withTable(plain(coreV1, "Endpoints", "endpoints", "endpoints", true, []string{"ep"}, nil),
		[]metav1.TableColumnDefinition{colName, col("Endpoints", "string"), colAge},
		func(o runtime.Object) []any {
			//lint:ignore SA1019 hoist serves the core/v1 Endpoints API, which clients still use.
			e := o.(*corev1.Endpoints)
			var eps []string
			for _, s := range e.Subsets {
				for _, a := range s.Addresses {
					for _, p := range s.Ports {
						eps = append(eps, fmt.Sprintf("%s:%d", a.IP, p.Port))
					}
					if len(s.Ports) == 0 {
						eps = append(eps, a.IP)
					}
				}
			}
			return []any{e.Name, orNone(truncList(eps, 3)), age(o)}
		})
}

func endpointSlices() *Resource {
	return withTable(plain(discoveryV1, "EndpointSlice", "endpointslices", "endpointslice", true, nil, nil),
		[]metav1.TableColumnDefinition{colName, col("AddressType", "string"), col("Ports", "string"), col("Endpoints", "string"), colAge},
		func(o runtime.Object) []any {
			s := o.(*discoveryv1.EndpointSlice)
			var ports, addrs []string
			for _, p := range s.Ports {
				if p.Port != nil {
					ports = append(ports, fmt.Sprint(*p.Port))
				}
			}
			for _, e := range s.Endpoints {
				addrs = append(addrs, e.Addresses...)
			}
			return []any{s.Name, string(s.AddressType), orNone(strings.Join(ports, ",")), orNone(truncList(addrs, 3)), age(o)}
		})
}

func leases() *Resource {
	return withTable(plain(coordinationV1, "Lease", "leases", "lease", true, nil, nil),
		[]metav1.TableColumnDefinition{colName, col("Holder", "string"), colAge},
		func(o runtime.Object) []any {
			l := o.(*coordinationv1.Lease)
			return []any{l.Name, derefStr(l.Spec.HolderIdentity), age(o)}
		})
}

// truncList joins the first n items and says how many more there are, as
// kubectl's endpoint columns do.
func truncList(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ",")
	}
	return fmt.Sprintf("%s + %d more...", strings.Join(items[:n], ","), len(items)-n)
}
