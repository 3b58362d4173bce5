// Package human formats values for people reading kubectl warnings, rejection messages
// and CLI tables, so that the webhook and the offline commands say things the same way.
package human

import (
	"fmt"
	"time"
)

// Duration is a short, coarse duration: "45s", "12m", "26h", "9d".
func Duration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 72*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}
