package apiserver

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"sort"
	"strings"

	"github.com/hoist-project/hoist/master/registry"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func (s *Server) serveCoreVersions(w http.ResponseWriter, r *http.Request) {
	writeObject(w, r, http.StatusOK, &metav1.APIVersions{
		TypeMeta: metav1.TypeMeta{Kind: "APIVersions"},
		Versions: []string{"v1"},
		ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{
			{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host},
		},
	})
}

func (s *Server) apiGroup(gv schema.GroupVersion) metav1.APIGroup {
	v := metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: gv.Version}
	return metav1.APIGroup{TypeMeta: metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"},
		Name: gv.Group, Versions: []metav1.GroupVersionForDiscovery{v}, PreferredVersion: v}
}

func (s *Server) serveGroupList(w http.ResponseWriter, r *http.Request) {
	list := &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}}
	for _, gv := range s.groups {
		if gv.Group != "" {
			list.Groups = append(list.Groups, s.apiGroup(gv))
		}
	}
	writeObject(w, r, http.StatusOK, list)
}

// serveDiscoveryPath serves /api/v1, /apis/<group> and /apis/<group>/<version>.
func (s *Server) serveDiscoveryPath(w http.ResponseWriter, r *http.Request, path string) bool {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(parts) == 2 && parts[0] == "api" && parts[1] == "v1":
		writeObject(w, r, http.StatusOK, s.resourceList(schema.GroupVersion{Version: "v1"}))
		return true
	case len(parts) == 2 && parts[0] == "apis":
		for _, gv := range s.groups {
			if gv.Group == parts[1] && gv.Group != "" {
				g := s.apiGroup(gv)
				writeObject(w, r, http.StatusOK, &g)
				return true
			}
		}
	case len(parts) == 3 && parts[0] == "apis":
		gv := schema.GroupVersion{Group: parts[1], Version: parts[2]}
		for _, g := range s.groups {
			if g == gv && g.Group != "" {
				writeObject(w, r, http.StatusOK, s.resourceList(gv))
				return true
			}
		}
	}
	return false
}

var (
	allVerbs    = metav1.Verbs{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
	subVerbs    = metav1.Verbs{"get", "patch", "update"}
	createVerbs = metav1.Verbs{"create"}
)

func (s *Server) resourceList(gv schema.GroupVersion) *metav1.APIResourceList {
	list := &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv.String()}
	var stores []*registry.Store
	for _, st := range s.cfg.Stores {
		if st.Res.GroupVersion == gv {
			stores = append(stores, st)
		}
	}
	sort.Slice(stores, func(i, j int) bool { return stores[i].Res.Name < stores[j].Res.Name })
	for _, st := range stores {
		res := st.Res
		list.APIResources = append(list.APIResources, metav1.APIResource{
			Name: res.Name, SingularName: res.Singular, Namespaced: res.Namespaced, Kind: res.Kind,
			Verbs: allVerbs, ShortNames: res.ShortNames, Categories: res.Categories,
			StorageVersionHash: storageVersionHash(gv, res.Kind),
		})
		for _, sub := range res.Subresources {
			ar := metav1.APIResource{Name: res.Name + "/" + sub, Namespaced: res.Namespaced, Kind: res.Kind, Verbs: subVerbs}
			switch sub {
			case "scale":
				ar.Group, ar.Version, ar.Kind = "autoscaling", "v1", "Scale"
			case "binding":
				ar.Kind, ar.Verbs = "Binding", createVerbs
			case "eviction":
				ar.Group, ar.Version, ar.Kind, ar.Verbs = "policy", "v1", "Eviction", createVerbs
			case "token":
				ar.Group, ar.Version, ar.Kind, ar.Verbs = "authentication.k8s.io", "v1", "TokenRequest", createVerbs
			case "finalize":
				ar.Verbs = metav1.Verbs{"update"}
			}
			list.APIResources = append(list.APIResources, ar)
		}
	}
	return list
}

// storageVersionHash is upstream's opaque per-kind hash clients use to
// detect storage version changes.
func storageVersionHash(gv schema.GroupVersion, kind string) string {
	sum := sha256.Sum256([]byte(gv.Group + "/" + gv.Version + "/" + kind))
	return base64.StdEncoding.EncodeToString(sum[:8])
}
