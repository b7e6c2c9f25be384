package streamio

import "testing"

func TestIsZero(t *testing.T) {
	big := make([]byte, 3*len(zeroBlock)+5)
	if !IsZero(nil) || !IsZero(big) {
		t.Error("zeros are not zero")
	}
	for _, at := range []int{0, len(zeroBlock) - 1, len(zeroBlock), len(big) - 1} {
		big[at] = 1
		if IsZero(big) {
			t.Errorf("a 1 at %d is not seen", at)
		}
		big[at] = 0
	}
}
