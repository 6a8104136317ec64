package registry

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

func namespaces() *Resource {
	r := withStatus(coreV1, "Namespace", "namespaces", "namespace", false, []string{"ns"}, nil)
	r.Subresources = []string{"status", "finalize"}
	r.DNSLabelNames = true
	r.Strategy = namespaceStrategy{}
	r.FieldLabels = []string{"status.phase"}
	r.Fields = func(o runtime.Object) fields.Set {
		return fields.Set{"status.phase": string(o.(*corev1.Namespace).Status.Phase)}
	}
	r.HoldsDeletion = func(o runtime.Object) bool { return len(o.(*corev1.Namespace).Spec.Finalizers) > 0 }
	r.StartDeletion = func(o runtime.Object) { o.(*corev1.Namespace).Status.Phase = corev1.NamespaceTerminating }
	r.Columns = []metav1.TableColumnDefinition{colName, col("Status", "string"), colAge}
	r.Row = func(o runtime.Object) []any {
		n := o.(*corev1.Namespace)
		return []any{n.Name, string(n.Status.Phase), age(o)}
	}
	return r
}

type namespaceStrategy struct{ BaseStrategy }

func (namespaceStrategy) PrepareForCreate(o runtime.Object) {
	n := o.(*corev1.Namespace)
	n.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
	if len(n.Spec.Finalizers) == 0 {
		n.Spec.Finalizers = []corev1.FinalizerName{corev1.FinalizerKubernetes}
	}
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	n.Labels[corev1.LabelMetadataName] = n.Name
}

func (namespaceStrategy) PrepareForUpdate(o, old runtime.Object) {
	n := o.(*corev1.Namespace)
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	n.Labels[corev1.LabelMetadataName] = n.Name
}

func nodes() *Resource {
	r := withStatus(coreV1, "Node", "nodes", "node", false, []string{"no"}, nil)
	r.FieldLabels = []string{"spec.unschedulable"}
	r.Fields = func(o runtime.Object) fields.Set {
		return fields.Set{"spec.unschedulable": fmt.Sprint(o.(*corev1.Node).Spec.Unschedulable)}
	}
	r.Columns = []metav1.TableColumnDefinition{colName, col("Status", "string"), col("Roles", "string"), colAge,
		col("Version", "string"), wide("Internal-IP", "string"), wide("External-IP", "string"),
		wide("OS-Image", "string"), wide("Kernel-Version", "string"), wide("Container-Runtime", "string")}
	r.Row = func(o runtime.Object) []any {
		n := o.(*corev1.Node)
		status := "Unknown"
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				status = "NotReady"
				if c.Status == corev1.ConditionTrue {
					status = "Ready"
				}
			}
		}
		if n.Spec.Unschedulable {
			status += ",SchedulingDisabled"
		}
		var roles []string
		for k := range n.Labels {
			if role, ok := strings.CutPrefix(k, "node-role.kubernetes.io/"); ok && role != "" {
				roles = append(roles, role)
			}
		}
		sort.Strings(roles)
		addr := func(t corev1.NodeAddressType) string {
			for _, a := range n.Status.Addresses {
				if a.Type == t {
					return a.Address
				}
			}
			return "<none>"
		}
		ni := n.Status.NodeInfo
		return []any{n.Name, status, joinOrNone(roles), age(o), ni.KubeletVersion, addr(corev1.NodeInternalIP),
			addr(corev1.NodeExternalIP), orNone(ni.OSImage), orNone(ni.KernelVersion), orNone(ni.ContainerRuntimeVersion)}
	}
	return r
}

func secrets() *Resource {
	r := plain(coreV1, "Secret", "secrets", "secret", true, nil, nil)
	r.Strategy = secretStrategy{}
	r.FieldLabels = []string{"type"}
	r.Fields = func(o runtime.Object) fields.Set { return fields.Set{"type": string(o.(*corev1.Secret).Type)} }
	r.Columns = []metav1.TableColumnDefinition{colName, col("Type", "string"), col("Data", "string"), colAge}
	r.Row = func(o runtime.Object) []any {
		s := o.(*corev1.Secret)
		return []any{s.Name, string(s.Type), fmt.Sprint(len(s.Data)), age(o)}
	}
	return r
}

type secretStrategy struct{ BaseStrategy }

func (secretStrategy) PrepareForCreate(o runtime.Object) {
	s := o.(*corev1.Secret)
	if s.Type == "" {
		s.Type = corev1.SecretTypeOpaque
	}
	// stringData is write-only: fold it into data as upstream does.
	for k, v := range s.StringData {
		if s.Data == nil {
			s.Data = map[string][]byte{}
		}
		s.Data[k] = []byte(v)
	}
	s.StringData = nil
}

func (st secretStrategy) PrepareForUpdate(o, _ runtime.Object) { st.PrepareForCreate(o) }

func events() *Resource {
	r := plain(coreV1, "Event", "events", "event", true, []string{"ev"}, nil)
	r.FieldLabels = []string{"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
		"involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
		"involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"}
	r.Fields = func(o runtime.Object) fields.Set {
		e := o.(*corev1.Event)
		io := e.InvolvedObject
		return fields.Set{"involvedObject.kind": io.Kind, "involvedObject.namespace": io.Namespace,
			"involvedObject.name": io.Name, "involvedObject.uid": string(io.UID), "involvedObject.apiVersion": io.APIVersion,
			"involvedObject.resourceVersion": io.ResourceVersion, "involvedObject.fieldPath": io.FieldPath,
			"reason": e.Reason, "reportingComponent": e.ReportingController, "source": e.Source.Component, "type": e.Type}
	}
	r.Columns = []metav1.TableColumnDefinition{col("Last Seen", "string"), col("Type", "string"), col("Reason", "string"),
		col("Object", "string"), col("Message", "string"), wide("Source", "string"), wide("First Seen", "string"),
		wide("Count", "string"), {Name: "Name", Type: "string", Format: "name", Priority: 1}}
	r.Row = func(o runtime.Object) []any {
		e := o.(*corev1.Event)
		last := e.LastTimestamp
		if last.IsZero() {
			last = metav1.NewTime(e.EventTime.Time)
		}
		obj := strings.ToLower(e.InvolvedObject.Kind) + "/" + e.InvolvedObject.Name
		return []any{since(last), e.Type, e.Reason, obj, strings.TrimSpace(e.Message), e.Source.Component,
			since(e.FirstTimestamp), fmt.Sprint(e.Count), e.Name}
	}
	return r
}

func replicationControllers() *Resource {
	r := withStatus(coreV1, "ReplicationController", "replicationcontrollers", "replicationcontroller", true, []string{"rc"}, []string{"all"})
	r.Subresources = []string{"status", "scale"}
	r.FieldLabels = []string{"status.replicas"}
	r.Fields = func(o runtime.Object) fields.Set {
		return fields.Set{"status.replicas": fmt.Sprint(o.(*corev1.ReplicationController).Status.Replicas)}
	}
	r.Scale = &ScaleAccess{
		Get: func(o runtime.Object) (int32, int32, string) {
			rc := o.(*corev1.ReplicationController)
			return deref(rc.Spec.Replicas, 1), rc.Status.Replicas, labels.SelectorFromSet(rc.Spec.Selector).String()
		},
		Set: func(o runtime.Object, n int32) { o.(*corev1.ReplicationController).Spec.Replicas = &n },
	}
	r.Columns = replicaColumns()
	r.Row = func(o runtime.Object) []any {
		rc := o.(*corev1.ReplicationController)
		return append([]any{rc.Name, fmt.Sprint(deref(rc.Spec.Replicas, 1)), fmt.Sprint(rc.Status.Replicas),
			fmt.Sprint(rc.Status.ReadyReplicas), age(o)}, templateCells(rc.Spec.Template, labels.SelectorFromSet(rc.Spec.Selector).String())...)
	}
	return r
}

func persistentVolumes() *Resource {
	r := withStatus(coreV1, "PersistentVolume", "persistentvolumes", "persistentvolume", false, []string{"pv"}, nil)
	r.Columns = []metav1.TableColumnDefinition{colName, col("Capacity", "string"), col("Access Modes", "string"),
		col("Reclaim Policy", "string"), col("Status", "string"), col("Claim", "string"), col("StorageClass", "string"),
		col("VolumeAttributesClass", "string"), col("Reason", "string"), colAge, wide("VolumeMode", "string")}
	r.Row = func(o runtime.Object) []any {
		pv := o.(*corev1.PersistentVolume)
		claim := ""
		if c := pv.Spec.ClaimRef; c != nil {
			claim = c.Namespace + "/" + c.Name
		}
		q := pv.Spec.Capacity[corev1.ResourceStorage]
		return []any{pv.Name, q.String(), accessModes(pv.Spec.AccessModes), string(pv.Spec.PersistentVolumeReclaimPolicy),
			string(pv.Status.Phase), claim, pv.Spec.StorageClassName, orNone(derefStr(pv.Spec.VolumeAttributesClassName)),
			pv.Status.Reason, age(o), string(derefMode(pv.Spec.VolumeMode))}
	}
	return r
}

func persistentVolumeClaims() *Resource {
	r := withStatus(coreV1, "PersistentVolumeClaim", "persistentvolumeclaims", "persistentvolumeclaim", true, []string{"pvc"}, nil)
	r.Columns = []metav1.TableColumnDefinition{colName, col("Status", "string"), col("Volume", "string"),
		col("Capacity", "string"), col("Access Modes", "string"), col("StorageClass", "string"),
		col("VolumeAttributesClass", "string"), colAge, wide("VolumeMode", "string")}
	r.Row = func(o runtime.Object) []any {
		c := o.(*corev1.PersistentVolumeClaim)
		q := c.Status.Capacity[corev1.ResourceStorage]
		capacity := ""
		if !q.IsZero() {
			capacity = q.String()
		}
		return []any{c.Name, string(c.Status.Phase), c.Spec.VolumeName, capacity, accessModes(c.Status.AccessModes),
			derefStr(c.Spec.StorageClassName), orNone(derefStr(c.Spec.VolumeAttributesClassName)), age(o),
			string(derefMode(c.Spec.VolumeMode))}
	}
	return r
}

func accessModes(modes []corev1.PersistentVolumeAccessMode) string {
	short := map[corev1.PersistentVolumeAccessMode]string{corev1.ReadWriteOnce: "RWO", corev1.ReadOnlyMany: "ROX",
		corev1.ReadWriteMany: "RWX", corev1.ReadWriteOncePod: "RWOP"}
	var out []string
	for _, m := range modes {
		out = append(out, short[m])
	}
	return strings.Join(out, ",")
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func derefStr(p *string) string { return deref(p, "") }

func derefMode(p *corev1.PersistentVolumeMode) corev1.PersistentVolumeMode {
	return deref(p, corev1.PersistentVolumeFilesystem)
}
