package spec

import (
	"fmt"
	"time"
)

// AnnotationOnbootTimeout is the annotation kiln-init reads as an onboot container's time
// limit: a Go duration ("90s", "10m"), "0" for none (see init/README.md). kiln-init cannot
// stop a boot to say the value is wrong, so the build does.
const AnnotationOnbootTimeout = "kiln.onboot.timeout"

// checkAnnotations rejects annotation values kiln-init would not understand.
func checkAnnotations(a map[string]string) error {
	v, ok := a[AnnotationOnbootTimeout]
	if !ok {
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("%s: %q is not a duration such as 90s or 5m (0 for no limit): %w", AnnotationOnbootTimeout, v, err)
	}
	if d < 0 {
		return fmt.Errorf("%s: %q is negative (0 means no limit)", AnnotationOnbootTimeout, v)
	}
	return nil
}
