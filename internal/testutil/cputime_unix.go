//go:build unix

package testutil

import (
	"syscall"
	"time"
)

// ProcessCPU is the CPU time the process has used, user and system: on a machine shared
// with other work a benchmark's CPU time per operation says more than its wall time.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
