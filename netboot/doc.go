// Package netboot serves systems that kiln build wrote (kernel, initrd and command line) to
// machines that boot from the network: over HTTP for iPXE (a generated script chooses the
// system by the machine's MAC address), over TFTP for firmware that speaks nothing else
// (PXE ROMs fetching iPXE, pxelinux-style configurations for s390x's firmware, UEFI's PXE
// client fetching a UKI), and with per-machine metadata in cloud-init's NoCloud layout for
// services/metadata's HTTP source (kiln.metadata.url=).
//
// Both protocols serve one read-only tree of files (Tree). Nothing is written; every file is
// opened for the request that asks for it, so a rebuilt system is served from the next
// request on.
//
// The tree, for a system NAME (the files out/NAME-kernel, -initrd.img, -cmdline and, when
// built, NAME.efi):
//
//	boot.ipxe                  iPXE script: chains to ipxe/MAC for the booting NIC
//	ipxe/MAC                   iPXE script: the machine's system, its command line, its metadata URL
//	pxelinux.cfg/default       pxelinux-style configuration of the default system
//	pxelinux.cfg/01-MAC        the same for one machine
//	systems/NAME/kernel        the kernel
//	systems/NAME/initrd.img    the initramfs
//	systems/NAME/cmdline       its command line as kiln build wrote it
//	systems/NAME/kiln.efi      its UKI, when NAME.efi was built (UEFI PXE boots it directly)
//	machines/MAC/meta-data     NoCloud meta-data (the machine's, else a generated instance-id)
//	machines/MAC/user-data     NoCloud user-data (the machine's, else none: 404)
//	undionly.kpxe, ipxe.efi, snponly.efi   iPXE for PXE firmware (from the bootloaders image)
//
// MAC is written in lower case with hyphens (52-54-00-12-34-56), as iPXE's ${mac:hexhyp}
// expands it; colons are accepted too.
package netboot
