package registry

import (
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func labelsSet(m map[string]string) labels.Set { return labels.Set(m) }

func jobs() *Resource {
	r := withStatus(batchV1, "Job", "jobs", "job", true, nil, []string{"all"})
	r.Strategy = jobStrategy{}
	r.FieldLabels = []string{"status.successful"}
	r.Fields = func(o runtime.Object) fields.Set {
		return fields.Set{"status.successful": fmt.Sprint(o.(*batchv1.Job).Status.Succeeded)}
	}
	r.Columns = []metav1.TableColumnDefinition{colName, col("Status", "string"), col("Completions", "string"),
		col("Duration", "string"), colAge, wide("Containers", "string"), wide("Images", "string"), wide("Selector", "string")}
	r.Row = func(o runtime.Object) []any {
		j := o.(*batchv1.Job)
		status := "Running"
		for _, c := range j.Status.Conditions {
			if c.Status == corev1.ConditionTrue && (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) {
				status = string(c.Type)
			}
		}
		dur := ""
		if s := j.Status.StartTime; s != nil {
			end := metav1.Now()
			if c := j.Status.CompletionTime; c != nil {
				end = *c
			}
			dur = duration.HumanDuration(end.Sub(s.Time))
		}
		return append([]any{j.Name, status, fmt.Sprintf("%d/%d", j.Status.Succeeded, deref(j.Spec.Completions, 1)), dur, age(o)},
			templateCells(&j.Spec.Template, selectorString(j.Spec.Selector))...)
	}
	return r
}

// jobStrategy generates the job's selector and labels from its uid, as
// upstream does when manualSelector is unset.
type jobStrategy struct{ BaseStrategy }

func (jobStrategy) PrepareForCreate(o runtime.Object) {
	j := o.(*batchv1.Job)
	DefaultPodSpec(&j.Spec.Template.Spec)
	one := int32(1)
	if j.Spec.Completions == nil {
		j.Spec.Completions = &one
	}
	if j.Spec.Parallelism == nil {
		j.Spec.Parallelism = &one
	}
	if j.Spec.BackoffLimit == nil {
		six := int32(6)
		j.Spec.BackoffLimit = &six
	}
	if j.Spec.ManualSelector == nil || !*j.Spec.ManualSelector {
		uid := string(j.UID)
		j.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"batch.kubernetes.io/controller-uid": uid}}
		if j.Spec.Template.Labels == nil {
			j.Spec.Template.Labels = map[string]string{}
		}
		for k, v := range map[string]string{"batch.kubernetes.io/controller-uid": uid, "controller-uid": uid,
			"batch.kubernetes.io/job-name": j.Name, "job-name": j.Name} {
			j.Spec.Template.Labels[k] = v
		}
	}
}

func (jobStrategy) Validate(o runtime.Object) field.ErrorList {
	j := o.(*batchv1.Job)
	var errs field.ErrorList
	if rp := j.Spec.Template.Spec.RestartPolicy; rp != corev1.RestartPolicyOnFailure && rp != corev1.RestartPolicyNever {
		errs = append(errs, field.NotSupported(field.NewPath("spec", "template", "spec", "restartPolicy"), rp,
			[]string{string(corev1.RestartPolicyOnFailure), string(corev1.RestartPolicyNever)}))
	}
	return append(errs, ValidatePodSpec(&j.Spec.Template.Spec, field.NewPath("spec", "template", "spec"))...)
}

func podDisruptionBudgets() *Resource {
	r := withStatus(policyV1, "PodDisruptionBudget", "poddisruptionbudgets", "poddisruptionbudget", true, []string{"pdb"}, nil)
	r.Strategy = pdbStrategy{}
	r.Columns = []metav1.TableColumnDefinition{colName, col("Min Available", "string"), col("Max Unavailable", "string"),
		col("Allowed Disruptions", "integer"), colAge}
	r.Row = func(o runtime.Object) []any {
		p := o.(*policyv1.PodDisruptionBudget)
		show := func(v *intstr.IntOrString) string {
			if v == nil {
				return "N/A"
			}
			return v.String()
		}
		return []any{p.Name, show(p.Spec.MinAvailable), show(p.Spec.MaxUnavailable), p.Status.DisruptionsAllowed, age(o)}
	}
	return r
}

type pdbStrategy struct{ BaseStrategy }

func (pdbStrategy) Validate(o runtime.Object) field.ErrorList {
	p := o.(*policyv1.PodDisruptionBudget)
	if p.Spec.MinAvailable != nil && p.Spec.MaxUnavailable != nil {
		return field.ErrorList{field.Invalid(field.NewPath("spec"), p.Spec, "minAvailable and maxUnavailable cannot be both set")}
	}
	return nil
}
