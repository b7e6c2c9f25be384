package bzimage

import "encoding/binary"

// The x86 branch filter of the xz format. Before compression it rewrote the 32-bit relative
// target of each CALL (0xE8) and JMP (0xE9) that looked real into an absolute one, because the
// same function called from many places then gives the same bytes, which compress better.
// Decoding turns absolute targets back into relative ones.
//
// Whether an E8/E9 byte "looked real" depends on the target's top byte (0x00 or 0xFF, a
// displacement within +-16 MiB) and on a small history of E8/E9 bytes seen in the previous
// few positions that were not converted: a bit per position, shifted along as the scan
// moves. The decoder must make exactly the encoder's choices, so it keeps the same history.

// x86Allowed says, for the history bits of the three positions before an E8/E9 byte, whether
// a conversion may happen there.
var x86Allowed = [8]bool{true, true, true, false, true, false, false, false}

// x86Shift gives, for the same history bits, which byte of a candidate target must not be a
// sign byte for the conversion to stand (counted from the top: 0 is the top byte).
var x86Shift = [8]uint{0, 1, 2, 2, 3, 3, 3, 3}

func signByte(b byte) bool { return b == 0x00 || b == 0xff }

// x86Decode undoes the x86 filter in place on data that starts at stream position 0.
func x86Decode(buf []byte) {
	var history uint32 // bit n: an unconverted E8/E9 n positions back; bit 4+n: its target's top byte was a sign byte
	last := -5         // position of the previous E8/E9 byte
	for i := 0; i+5 <= len(buf); {
		if buf[i] != 0xe8 && buf[i] != 0xe9 {
			i++
			continue
		}
		if gap := i - last; gap > 5 {
			history = 0
		} else {
			for ; gap > 0; gap-- {
				history = (history & 0x77) << 1
			}
		}
		last = i
		top := buf[i+4]
		if !signByte(top) || history >= 0x20 || !x86Allowed[(history>>1)&7] {
			i++
			history |= 1
			if signByte(top) {
				history |= 0x10
			}
			continue
		}
		target := binary.LittleEndian.Uint32(buf[i+1:])
		var rel uint32
		for {
			rel = target - uint32(i+5)
			if history == 0 {
				break
			}
			shift := 24 - 8*x86Shift[(history>>1)&7]
			if !signByte(byte(rel >> shift)) {
				break
			}
			target = rel ^ (1<<(shift+8) - 1)
		}
		// Keep 25 bits and sign-extend from bit 24, as the encoder stored them.
		rel &= 0x01ffffff
		if rel&0x01000000 != 0 {
			rel |= 0xff000000
		}
		binary.LittleEndian.PutUint32(buf[i+1:], rel)
		i += 5
		history = 0
	}
}
