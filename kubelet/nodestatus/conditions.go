package nodestatus

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// conditions computes the four node conditions. A condition whose status
// did not change keeps its lastTransitionTime from old.
func (m *Manager) conditions(ctx context.Context, old []v1.NodeCondition, now time.Time) []v1.NodeCondition {
	u, uerr := m.cfg.Machine.Usage()
	cond := func(t v1.NodeConditionType, bad bool, badReason, goodReason, msgBad, msgGood string) v1.NodeCondition {
		c := v1.NodeCondition{Type: t, Status: v1.ConditionFalse, Reason: goodReason, Message: msgGood}
		if bad {
			c.Status, c.Reason, c.Message = v1.ConditionTrue, badReason, msgBad
		}
		return c
	}
	var cs []v1.NodeCondition
	memBad := uerr == nil && u.MemoryAvailable < memoryPressureBytes
	cs = append(cs, cond(v1.NodeMemoryPressure, memBad, "KubeletHasInsufficientMemory", "KubeletHasSufficientMemory",
		fmt.Sprintf("memory available %dMi is below the threshold 100Mi", u.MemoryAvailable>>20), "kubelet has sufficient memory available"))
	diskBad := uerr == nil && m.info.DiskBytes > 0 && u.DiskAvailable*100 < m.info.DiskBytes*diskPressurePercent
	cs = append(cs, cond(v1.NodeDiskPressure, diskBad, "KubeletHasDiskPressure", "KubeletHasNoDiskPressure",
		fmt.Sprintf("root filesystem has %dMi available, below %d%% of %dMi", u.DiskAvailable>>20, diskPressurePercent, m.info.DiskBytes>>20), "kubelet has no disk pressure"))
	pidBad := uerr == nil && u.PIDMax > 0 && u.PIDs*100 > u.PIDMax*pidPressurePercent
	cs = append(cs, cond(v1.NodePIDPressure, pidBad, "KubeletHasInsufficientPID", "KubeletHasSufficientPID",
		fmt.Sprintf("%d of %d process IDs in use", u.PIDs, u.PIDMax), "kubelet has sufficient PID available"))
	ready := v1.NodeCondition{Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status"}
	if msg := m.notReady(ctx, uerr); msg != "" {
		ready.Status, ready.Reason, ready.Message = v1.ConditionFalse, "KubeletNotReady", msg
	}
	cs = append(cs, ready)
	t := metav1.NewTime(now)
	for i := range cs {
		cs[i].LastHeartbeatTime, cs[i].LastTransitionTime = t, t
		for _, o := range old {
			if o.Type == cs[i].Type && o.Status == cs[i].Status && !o.LastTransitionTime.IsZero() {
				cs[i].LastTransitionTime = o.LastTransitionTime
			}
		}
	}
	return cs
}

// notReady names what keeps the node from running pods ("" when nothing).
func (m *Manager) notReady(ctx context.Context, usageErr error) string {
	if m.cfg.RuntimeVersion != nil {
		if _, err := m.cfg.RuntimeVersion(ctx); err != nil {
			return "container runtime is down: " + err.Error()
		}
	}
	if m.cfg.NetworkReady != nil {
		if err := m.cfg.NetworkReady(); err != nil {
			return err.Error() // e.g. "network plugin not ready: no CNI configuration in /etc/cni/net.d"
		}
	}
	if usageErr != nil {
		return "cannot read node usage: " + usageErr.Error()
	}
	return ""
}
