module kiln.example/kerneltools

go 1.26.8

require github.com/ulikunitz/xz v0.5.15
