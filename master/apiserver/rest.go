package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/google/uuid"
	"io"
	"k8s.io/apimachinery/pkg/types"
	"net/http"
	"strconv"
	"strings"

	"github.com/hoist-project/hoist/master/apiserver/request"
	"github.com/hoist-project/hoist/master/registry"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func (s *Server) serveResource(w http.ResponseWriter, r *http.Request, info request.Info) {
	gvr := schema.GroupVersionResource{Group: info.APIGroup, Version: info.APIVersion, Resource: info.Resource}
	if gvr == selfSubjectReviews && info.Subresource == "" && info.Name == "" {
		s.serveSelfSubjectReview(w, r, info)
		return
	}
	st := s.stores[gvr]
	if st == nil {
		writeError(w, r, apierrors.NewNotFound(gvr.GroupResource(), info.Name))
		return
	}
	ns := info.Namespace
	if !st.Res.Namespaced {
		ns = ""
	}
	if info.Subresource != "" && !st.Res.HasSubresource(info.Subresource) {
		writeError(w, r, apierrors.NewNotFound(gvr.GroupResource(), info.Name+"/"+info.Subresource))
		return
	}
	if createOnlySubresource(info.Subresource) && info.Verb != "create" {
		writeError(w, r, apierrors.NewMethodNotSupported(gvr.GroupResource(), info.Verb))
		return
	}
	h := &handler{s: s, st: st, ns: ns, info: info, w: w, r: r}
	var err error
	switch info.Verb {
	case "get":
		err = h.get()
	case "list":
		err = h.list()
	case "watch":
		err = h.watch()
	case "create":
		err = h.create()
	case "update":
		err = h.update()
	case "patch":
		err = h.patch()
	case "delete":
		err = h.delete()
	case "deletecollection":
		err = h.deleteCollection()
	default:
		err = apierrors.NewMethodNotSupported(gvr.GroupResource(), info.Verb)
	}
	if err != nil {
		writeError(w, r, err)
	}
}

// createOnlySubresource reports whether sub only accepts POST (binding,
// eviction, token).
func createOnlySubresource(sub string) bool {
	return sub == "binding" || sub == "eviction" || sub == "token"
}

// handler serves one resource request.
type handler struct {
	s    *Server
	st   *registry.Store
	ns   string
	info request.Info
	w    http.ResponseWriter
	r    *http.Request
}

func (h *handler) ctx() context.Context { return h.r.Context() }

func (h *handler) query(k string) string { return h.r.URL.Query().Get(k) }

func (h *handler) dryRun() bool { return h.query("dryRun") == "All" }

// respond writes an object in the negotiated format (Table if asked).
func (h *handler) respond(code int, obj runtime.Object) error {
	f, ok := negotiate(h.r)
	if !ok {
		return apierrors.NewGenericServerResponse(http.StatusNotAcceptable, "get", schema.GroupResource{}, "", "only application/json, application/yaml and meta.k8s.io/v1 Table are served", 0, false)
	}
	if f.table {
		var objs []runtime.Object
		lm := metav1.ListMeta{}
		if meta.IsListType(obj) {
			items, err := meta.ExtractList(obj)
			if err != nil {
				return apierrors.NewInternalError(err)
			}
			objs = items
			if la, err := meta.ListAccessor(obj); err == nil {
				lm.ResourceVersion, lm.Continue, lm.RemainingItemCount = la.GetResourceVersion(), la.GetContinue(), la.GetRemainingItemCount()
			}
		} else {
			objs = []runtime.Object{obj}
		}
		t := h.st.Res.TableFor(objs, h.query("includeObject"), false)
		t.ListMeta = lm
		writeFormatted(h.w, code, t, f)
		return nil
	}
	writeFormatted(h.w, code, obj, f)
	return nil
}

// respondEncoded is respond for an object whose JSON encoding the store
// already made (data, nil if none): plain JSON responses reuse it.
func (h *handler) respondEncoded(code int, obj runtime.Object, data []byte) error {
	if f, ok := negotiate(h.r); !ok || f != (format{}) || data == nil {
		return h.respond(code, obj)
	}
	h.w.Header().Set("Content-Type", "application/json")
	h.w.WriteHeader(code)
	_, _ = h.w.Write(data)
	return nil
}

func (h *handler) get() error {
	// resourceVersion: unset reads etcd, "0" the watch cache, N not older than N.
	obj, err := h.st.GetAt(h.ctx(), h.ns, h.info.Name, h.query("resourceVersion"))
	if err != nil {
		return err
	}
	if h.info.Subresource == "scale" {
		return h.respondPlain(http.StatusOK, scaleOf(h.st.Res, obj))
	}
	return h.respond(http.StatusOK, obj)
}

func (h *handler) respondPlain(code int, obj any) error {
	f, _ := negotiate(h.r)
	f.table = false
	writeFormatted(h.w, code, obj, f)
	return nil
}

func (h *handler) listOptions() (registry.ListOptions, error) {
	filter, err := h.st.ParseFilter(h.query("labelSelector"), h.query("fieldSelector"))
	if err != nil {
		return registry.ListOptions{}, err
	}
	o := registry.ListOptions{Filter: filter, Continue: h.query("continue"),
		ResourceVersion: h.query("resourceVersion"), ResourceVersionMatch: h.query("resourceVersionMatch")}
	if l := h.query("limit"); l != "" {
		if o.Limit, err = strconv.ParseInt(l, 10, 64); err != nil || o.Limit < 0 {
			return o, apierrors.NewBadRequest(fmt.Sprintf("invalid limit %q", l))
		}
	}
	return o, nil
}

func (h *handler) list() error {
	o, err := h.listOptions()
	if err != nil {
		return err
	}
	list, err := h.st.List(h.ctx(), h.ns, o)
	if err != nil {
		return err
	}
	return h.respond(http.StatusOK, list)
}

// readBody reads a request body up to the upstream limit, as JSON.
func (h *handler) readBody() ([]byte, error) {
	body, err := h.readBodyRaw()
	if err != nil {
		return nil, err
	}
	j, err := registry.ToJSON(h.s.cfg.Scheme, body, h.r.Header.Get("Content-Type"))
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	return j, nil
}

// readBodyRaw reads the body, refusing more than upstream's 3 MiB limit.
func (h *handler) readBodyRaw() ([]byte, error) {
	body, err := readAll(io.LimitReader(h.r.Body, registry.MaxObjectBytes+1), h.r.ContentLength)
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("reading request body: %v", err))
	}
	if len(body) > registry.MaxObjectBytes {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d bytes", registry.MaxObjectBytes))
	}
	return body, nil
}

// presizeLimit bounds the buffer readAll allocates up front on a client's
// word (Content-Length): larger bodies grow it as they arrive.
const presizeLimit = 64 << 10

// readAll is io.ReadAll into a buffer sized for a body of the declared
// length (n, -1 when unknown), so a typical body is read without growing
// and copying the buffer several times.
func readAll(r io.Reader, n int64) ([]byte, error) {
	if n <= 0 || n > presizeLimit {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, n+1) // +1: the read that reports EOF needs room
	for {
		m, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // longer than declared: grow as io.ReadAll
		}
	}
}

// decode decodes a patched object (JSON) as gvk and applies
// ?fieldValidation.
func (h *handler) decode(gvk schema.GroupVersionKind, body []byte) (runtime.Object, error) {
	return h.decodeWithPrefix(gvk, body, "")
}

// decodeBody decodes a create or update body: upstream prefixes its strict
// decoding errors with `<Kind> in version "<v>" cannot be handled as a <Kind>: `.
func (h *handler) decodeBody(gvk schema.GroupVersionKind, body []byte) (runtime.Object, error) {
	return h.decodeWithPrefix(gvk, body, fmt.Sprintf("%s in version %q cannot be handled as a %s: ", gvk.Kind, gvk.Version, gvk.Kind))
}

func (h *handler) decodeWithPrefix(gvk schema.GroupVersionKind, body []byte, prefix string) (runtime.Object, error) {
	d, err := registry.Decode(h.s.cfg.Scheme, gvk, body)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if err := h.fieldValidation(d.Strict, prefix); err != nil {
		return nil, err
	}
	return d.Obj, nil
}

// fieldValidationDirective checks ?fieldValidation, which is Ignore, Warn
// (the default) or Strict, answering other values as upstream does.
func (h *handler) fieldValidationDirective() (string, error) {
	switch v := h.query("fieldValidation"); v {
	case "":
		return metav1.FieldValidationWarn, nil
	case metav1.FieldValidationIgnore, metav1.FieldValidationWarn, metav1.FieldValidationStrict:
		return v, nil
	default:
		kind := map[string]string{"POST": "CreateOptions", "PUT": "UpdateOptions", "PATCH": "PatchOptions"}[h.r.Method]
		return "", apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: kind}, "", field.ErrorList{
			field.NotSupported(field.NewPath("fieldValidation"), v, []string{metav1.FieldValidationIgnore, metav1.FieldValidationStrict, metav1.FieldValidationWarn})})
	}
}

// fieldValidation applies ?fieldValidation=Strict|Warn|Ignore (default Warn)
// to the unknown or duplicate fields found while decoding.
func (h *handler) fieldValidation(strict []string, prefix string) error {
	directive, err := h.fieldValidationDirective()
	if err != nil || len(strict) == 0 {
		return err
	}
	switch directive {
	case metav1.FieldValidationIgnore:
	case metav1.FieldValidationStrict:
		return apierrors.NewBadRequest(prefix + "strict decoding error: " + strings.Join(strict, ", "))
	default:
		for _, msg := range strict {
			h.w.Header().Add("Warning", fmt.Sprintf("299 - %q", msg))
		}
	}
	return nil
}

func (h *handler) create() error {
	switch h.info.Subresource {
	case "binding":
		return h.bind()
	case "eviction":
		return h.evict()
	case "token":
		return h.createToken()
	}
	if h.info.Name != "" {
		return apierrors.NewMethodNotSupported(h.st.Res.GroupVersionResource().GroupResource(), "create on a named object")
	}
	if h.st.Res.Namespaced && h.ns == "" {
		return apierrors.NewBadRequest("the server could not find the requested resource: namespaced create needs /namespaces/{namespace}/")
	}
	body, err := h.readBody()
	if err != nil {
		return err
	}
	obj, err := h.decodeBody(h.st.Res.GroupVersionKind(), body)
	if err != nil {
		return err
	}
	acc, _ := meta.Accessor(obj)
	acc.SetUID(types.UID(uuid.NewString())) // fixed before admission: allocators own values by uid
	if acc.GetName() == "" && acc.GetGenerateName() == "" {
		return apierrors.NewInvalid(h.st.Res.GroupVersionKind().GroupKind(), "", fieldRequired("metadata.name", "name or generateName is required"))
	}
	a := Attributes{Op: Create, Resource: h.st.Res, Namespace: h.ns, Name: acc.GetName(), Obj: obj, DryRun: h.dryRun()}
	if err := h.s.cfg.Admission.Admit(h.ctx(), a); err != nil {
		return err
	}
	out, data, err := h.st.CreateJSON(h.ctx(), h.ns, obj, h.dryRun())
	if err != nil || h.dryRun() {
		h.s.cfg.Admission.Release(h.ctx(), h.st.Res, obj, nil)
	}
	if err != nil {
		return err
	}
	return h.respondEncoded(http.StatusCreated, out, data)
}

func (h *handler) update() error {
	body, err := h.readBody()
	if err != nil {
		return err
	}
	if h.info.Subresource == "scale" {
		return h.updateScale(body)
	}
	obj, err := h.decodeBody(h.st.Res.GroupVersionKind(), body)
	if err != nil {
		return err
	}
	acc, _ := meta.Accessor(obj)
	if acc.GetName() == "" {
		acc.SetName(h.info.Name)
	}
	return h.admittedUpdate(acc.GetResourceVersion(), func(runtime.Object) (runtime.Object, error) {
		return obj.DeepCopyObject(), nil
	})
}

// admittedUpdate runs fn through admission and the store, releasing
// allocations that the write made or made obsolete.
func (h *handler) admittedUpdate(precondition string, fn registry.UpdateFunc) error {
	sub := h.info.Subresource
	var admitted, previous runtime.Object
	out, err := h.st.GuaranteedUpdate(h.ctx(), h.ns, h.info.Name, sub, h.dryRun(), precondition, func(old runtime.Object) (runtime.Object, error) {
		obj, err := fn(old)
		if err != nil || obj == nil {
			return obj, err
		}
		acc, err := meta.Accessor(obj)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		if acc.GetName() != h.info.Name {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", acc.GetName(), h.info.Name))
		}
		if oldAcc, err := meta.Accessor(old); err == nil {
			// A uid in the body is a precondition, as upstream (worded like
			// the store's delete preconditions); none means the stored one.
			if uid := acc.GetUID(); uid != "" && uid != oldAcc.GetUID() {
				return nil, apierrors.NewConflict(h.st.Res.GroupVersionResource().GroupResource(), h.info.Name,
					fmt.Errorf("precondition failed: UID in precondition: %v, UID in object meta: %v", uid, oldAcc.GetUID()))
			}
			acc.SetUID(oldAcc.GetUID())
		}
		if h.st.Res.Namespaced && acc.GetNamespace() == "" {
			acc.SetNamespace(h.ns)
		}
		if h.st.Res.Namespaced && acc.GetNamespace() != h.ns {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("the namespace of the provided object (%s) does not match the namespace sent on the request (%s)", acc.GetNamespace(), h.ns))
		}
		if admitted != nil {
			h.s.cfg.Admission.Release(h.ctx(), h.st.Res, admitted, previous)
		}
		a := Attributes{Op: Update, Resource: h.st.Res, Namespace: h.ns, Name: h.info.Name, Subresource: sub, Obj: obj, Old: old, DryRun: h.dryRun()}
		if err := h.s.cfg.Admission.Admit(h.ctx(), a); err != nil {
			return nil, err
		}
		admitted, previous = obj, old
		return obj, nil
	})
	if admitted != nil {
		if err != nil || h.dryRun() {
			h.s.cfg.Admission.Release(h.ctx(), h.st.Res, admitted, previous)
		} else {
			h.s.cfg.Admission.Release(h.ctx(), h.st.Res, previous, out)
		}
	}
	if err != nil {
		return err
	}
	return h.respond(http.StatusOK, out)
}

func (h *handler) deleteOptions() (*metav1.DeleteOptions, error) {
	opts := &metav1.DeleteOptions{}
	raw, err := h.readBodyRaw()
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(raw)) > 0 {
		// client-go's typed clients send DeleteOptions as protobuf.
		body, err := registry.ToJSON(h.s.cfg.Scheme, raw, h.r.Header.Get("Content-Type"))
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid DeleteOptions: %v", err))
		}
		if err := json.Unmarshal(body, opts); err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid DeleteOptions: %v", err))
		}
	}
	if g := h.query("gracePeriodSeconds"); g != "" {
		v, err := strconv.ParseInt(g, 10, 64)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid gracePeriodSeconds %q", g))
		}
		opts.GracePeriodSeconds = &v
	}
	if p := h.query("propagationPolicy"); p != "" {
		pp := metav1.DeletionPropagation(p)
		opts.PropagationPolicy = &pp
	}
	if h.dryRun() {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	return opts, nil
}

// propagation is the policy DeleteOptions ask for ("" when none): the
// deprecated orphanDependents maps to Orphan or Background.
func propagation(opts *metav1.DeleteOptions) (metav1.DeletionPropagation, error) {
	//lint:ignore SA1019 older clients still send orphanDependents; the API must honour it.
	orphan := opts.OrphanDependents
	if orphan != nil && opts.PropagationPolicy != nil {
		return "", apierrors.NewBadRequest("orphanDependents and propagationPolicy cannot both be set; use propagationPolicy")
	}
	if o := orphan; o != nil {
		if *o {
			return metav1.DeletePropagationOrphan, nil
		}
		return metav1.DeletePropagationBackground, nil
	}
	if opts.PropagationPolicy == nil {
		return "", nil
	}
	switch p := *opts.PropagationPolicy; p {
	case metav1.DeletePropagationOrphan, metav1.DeletePropagationForeground, metav1.DeletePropagationBackground:
		return p, nil
	default:
		return "", apierrors.NewBadRequest(fmt.Sprintf("invalid propagationPolicy %q: use Orphan, Background or Foreground", p))
	}
}

func (h *handler) delete() error {
	opts, err := h.deleteOptions()
	if err != nil {
		return err
	}
	obj, err := h.deleteOne(h.info.Name, opts)
	if err != nil {
		return err
	}
	return h.respond(http.StatusOK, obj)
}

func (h *handler) deleteOne(name string, opts *metav1.DeleteOptions) (runtime.Object, error) {
	dry := len(opts.DryRun) > 0
	if err := h.s.cfg.Admission.Admit(h.ctx(), Attributes{Op: Delete, Resource: h.st.Res, Namespace: h.ns, Name: name, DryRun: dry}); err != nil {
		return nil, err
	}
	policy, err := propagation(opts)
	if err != nil {
		return nil, err
	}
	obj, gone, err := h.st.Delete(h.ctx(), h.ns, name, registry.DeleteOptions{
		GracePeriodSeconds: opts.GracePeriodSeconds, Preconditions: opts.Preconditions, DryRun: dry,
		Graceful: gracePeriod(h.st.Res), Propagation: policy,
	})
	if err != nil {
		return nil, err
	}
	if gone && !dry {
		h.s.cfg.Admission.Release(h.ctx(), h.st.Res, obj, nil)
	}
	return obj, nil
}

func (h *handler) deleteCollection() error {
	opts, err := h.deleteOptions()
	if err != nil {
		return err
	}
	lo, err := h.listOptions()
	if err != nil {
		return err
	}
	list, err := h.st.List(h.ctx(), h.ns, lo)
	if err != nil {
		return err
	}
	items, _ := meta.ExtractList(list)
	var deleted []runtime.Object
	for _, it := range items {
		acc, _ := meta.Accessor(it)
		h.ns = acc.GetNamespace()
		obj, err := h.deleteOne(acc.GetName(), opts)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		deleted = append(deleted, obj)
	}
	_ = meta.SetList(list, deleted)
	return h.respond(http.StatusOK, list)
}
