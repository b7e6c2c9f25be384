package archive

import "time"

// Option configures a tar or cpio writer.
type Option func(*options)

type options struct {
	modTime time.Time
}

func newOptions(opts []Option) options {
	o := options{modTime: time.Unix(0, 0)}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithModTime sets the modification time written for every entry (default: the Unix epoch).
// Pass SOURCE_DATE_EPOCH here. Sub-second precision is dropped: both formats store seconds.
// The cpio format holds times from 1970 to 2106 only; other times make WriteEntry fail.
func WithModTime(t time.Time) Option {
	return func(o *options) { o.modTime = time.Unix(t.Unix(), 0) }
}
