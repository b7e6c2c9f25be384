module kiln.example/nodepkg

go 1.26.8
