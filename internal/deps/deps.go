package deps
import (
 _ "github.com/google/go-containerregistry/pkg/v1/remote"
 _ "github.com/google/go-containerregistry/pkg/v1/layout"
 _ "gopkg.in/yaml.v3"
 _ "github.com/opencontainers/runtime-spec/specs-go"
 _ "github.com/opencontainers/image-spec/specs-go/v1"
 _ "github.com/klauspost/pgzip"
 _ "github.com/klauspost/compress/gzip"
 _ "golang.org/x/sys/unix"
 _ "golang.org/x/sync/errgroup"
)
