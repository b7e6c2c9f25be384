package layers

import "fmt"

// closeError combines the error of reading layer li (nil when reading succeeded) with the
// error of closing it. A Layer's Close may check the whole stream (the kiln cache verifies the
// blob's digest): when reading stopped at a damaged tar header and Close then finds the blob
// corrupt, the corruption is the cause, so it comes first and both stay matchable with
// errors.Is.
func closeError(li int, err, cerr error) error {
	if err == nil {
		return fmt.Errorf("layer %d: close: %w", li, cerr)
	}
	return fmt.Errorf("layer %d: %w (reading it: %w)", li, cerr, err)
}
