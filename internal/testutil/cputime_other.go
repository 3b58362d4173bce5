//go:build !unix

package testutil

import "time"

// ProcessCPU is the CPU time the process has used; 0 where the platform does not say.
func ProcessCPU() time.Duration { return 0 }
