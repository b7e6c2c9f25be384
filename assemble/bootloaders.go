package assemble

// DefaultBootloaders is the boot loaders image this kiln's media formats are made with by
// default: tools/bootloaders at the tag of this source tree (kiln pkg build
// tools/bootloaders makes it). A test checks that it follows the folder: when
// tools/bootloaders changes, set it to `kiln pkg show-tag tools/bootloaders`.
const DefaultBootloaders = "kiln/bootloaders:c1b51b0d1d248af3581d27e5e66ae4972e00f001"
