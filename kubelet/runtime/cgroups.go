package runtime

import (
	"errors"
	"os"
	"path"
	"path/filepath"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// cgroupRoot is where the cgroup hierarchies are mounted. On this project's
// hybrid machines runc runs in cgroup v1 mode (cgroupfs driver) because
// /sys/fs/cgroup itself is not a cgroup2 mount; on a pure v2 machine the same
// path is a directory in the unified tree. Either way runc takes the path.
const cgroupRoot = "/sys/fs/cgroup"

// QOSClass computes a pod's QoS class like upstream (simplified to cpu and
// memory): Guaranteed when every container has limits equal to its requests
// for both, BestEffort when nothing is set, Burstable otherwise.
func QOSClass(pod *v1.Pod) v1.PodQOSClass {
	any, guaranteed := false, true
	all := append(append([]v1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
	for _, c := range all {
		for _, r := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory} {
			req, hasReq := c.Resources.Requests[r]
			lim, hasLim := c.Resources.Limits[r]
			if hasReq || hasLim {
				any = true
			}
			if !hasLim || (hasReq && req.Cmp(lim) != 0) {
				guaranteed = false
			}
		}
	}
	switch {
	case !any:
		return v1.PodQOSBestEffort
	case guaranteed:
		return v1.PodQOSGuaranteed
	}
	return v1.PodQOSBurstable
}

// podCgroup is the pod's cgroup path relative to the hierarchy root, as
// upstream lays it out: /kubepods/pod<uid> for Guaranteed pods,
// /kubepods/burstable/pod<uid> and /kubepods/besteffort/pod<uid> otherwise.
func (r *Runtime) podCgroup(pod *v1.Pod) string {
	parent := "/" + r.cfg.CgroupParent
	switch QOSClass(pod) {
	case v1.PodQOSBurstable:
		parent = path.Join(parent, "burstable")
	case v1.PodQOSBestEffort:
		parent = path.Join(parent, "besteffort")
	}
	return path.Join(parent, "pod"+string(pod.UID))
}

// containerResources maps requests/limits to cgroup values: cpu shares from
// the request (2 minimum, like upstream), CFS quota from the limit (100 ms
// period) and the memory limit.
func containerResources(c *v1.Container) (shares uint64, quota int64, period uint64, memory int64) {
	const cfsPeriod = 100000
	shares = 2
	if q, ok := c.Resources.Requests[v1.ResourceCPU]; ok {
		shares = milliToShares(q)
	} else if q, ok := c.Resources.Limits[v1.ResourceCPU]; ok {
		shares = milliToShares(q) // requests default to limits
	}
	if q, ok := c.Resources.Limits[v1.ResourceCPU]; ok {
		quota = q.MilliValue() * cfsPeriod / 1000
		if quota < 1000 {
			quota = 1000 // the kernel's minimum
		}
		period = cfsPeriod
	}
	if q, ok := c.Resources.Limits[v1.ResourceMemory]; ok {
		memory = q.Value()
	}
	return shares, quota, period, memory
}

func milliToShares(q resource.Quantity) uint64 {
	s := uint64(q.MilliValue()) * 1024 / 1000
	if s < 2 {
		s = 2
	}
	return s
}

// removePodCgroup removes the pod's (now empty) cgroup from every hierarchy.
// Leftover child directories (containers runc did not clean) go first.
func removePodCgroup(rel string) error {
	hierarchies, err := os.ReadDir(cgroupRoot)
	if err != nil {
		return nil // no cgroup fs: nothing to clean
	}
	var errs []error
	for _, h := range hierarchies {
		dir := filepath.Join(cgroupRoot, h.Name(), rel)
		if err := removeCgroupDir(dir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := removeCgroupDir(filepath.Join(cgroupRoot, rel)); err != nil { // pure v2 layout
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// removeCgroupDir removes a cgroup directory depth-first (cgroup dirs are
// removed with rmdir, never with unlink of their files).
func removeCgroupDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeCgroupDir(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// RemoveCgroupParent removes the node-level parent cgroup tree (for tests
// and node teardown); it fails while any pod cgroup still has processes.
func RemoveCgroupParent(parent string) error {
	return removePodCgroup("/" + parent)
}
