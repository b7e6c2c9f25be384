module kiln.example/hello

go 1.26.8
