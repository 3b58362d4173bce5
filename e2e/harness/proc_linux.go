package harness

import (
	"os/exec"
	"syscall"
)

// setDeathSignal has the kernel kill the webhook if the process that started it dies
// without stopping it (a test binary killed by its timeout), so no webhook outlives its run.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
