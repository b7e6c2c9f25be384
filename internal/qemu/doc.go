// Package qemu boots a Linux kernel and initrd in QEMU for amd64, arm64 and s390x guests
// from any host, with the console on a pipe or a terminal. It serves `kiln run qemu` and the
// end-to-end tests, which start a VM and wait for marker lines on its serial console.
//
// The flags per architecture are the ones measured fastest under TCG on our machines (see
// the arches table): amd64 boots an ELF vmlinux through its PVH entry on q35 (about half
// the time of a bzImage, which also works); arm64 uses virt with a cortex-a57 CPU; s390x uses
// s390-ccw-virtio with CCW instead of PCI devices. Every VM runs with -nodefaults and
// -no-reboot, so a guest power-off, reboot or (with the panic=-1 added to the command line)
// kernel panic ends QEMU; Wait tells them apart by QEMU's status and the console's panic line.
//
// Find the guest's architecture and the kernel format with Inspect, build QEMU's arguments
// with Args or Command, boot and wait with Run, or Start a VM and follow it with WaitFor,
// Powerdown, Kill and Wait.
//
// It knows nothing about what kiln's init prints: markers are the caller's. It does not
// build kernels or initrds (see package qemutest for test ones), manage disk images, or
// use KVM unless asked (on our machines /dev/kvm exists but hangs).
package qemu
