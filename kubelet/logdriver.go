package kubelet

import (
	"os"
	"path/filepath"
)

// LogDriverName is the small logging-driver binary installed beside hoist.
const LogDriverName = "hoist-log-driver"

// logDriverBeside returns the logging driver for the kubelet running as exe:
// hoist-log-driver in the same directory, else exe itself (it accepts the
// same invocation, but every container start then pays for initialising
// the whole hoist binary).
func logDriverBeside(exe string) string {
	sib := filepath.Join(filepath.Dir(exe), LogDriverName)
	if st, err := os.Stat(sib); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
		return sib
	}
	return exe
}
