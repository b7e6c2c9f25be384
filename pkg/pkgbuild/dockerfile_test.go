package pkgbuild

import (
	"reflect"
	"strings"
	"testing"
)

func TestFromRefs(t *testing.T) {
	tests := []struct {
		name      string
		df        string
		buildArgs map[string]string
		platform  string
		want      []fromRef
		wantErr   string
	}{
		{
			name: "plain image",
			df:   "FROM kiln/a:1\nCOPY x /x\n",
			want: []fromRef{{"kiln/a:1", 1}},
		},
		{
			name: "global ARG default",
			df:   "ARG BASE=kiln/base:1\nFROM $BASE\n",
			want: []fromRef{{"kiln/base:1", 2}},
		},
		{
			name:      "build argument overrides the default",
			df:        "ARG BASE=kiln/base:1\nFROM ${BASE}\n",
			buildArgs: map[string]string{"BASE": "kiln/other:2"},
			want:      []fromRef{{"kiln/other:2", 2}},
		},
		{
			name:      "build argument for an ARG without default",
			df:        "ARG BASE\nFROM $BASE\n",
			buildArgs: map[string]string{"BASE": "kiln/given:3"},
			want:      []fromRef{{"kiln/given:3", 2}},
		},
		{
			name:      "build argument not declared by an ARG is not seen",
			df:        "FROM kiln/x:${V}y\n",
			buildArgs: map[string]string{"V": "1"},
			want:      []fromRef{{"kiln/x:y", 1}},
		},
		{
			name: "default refers to an earlier ARG",
			df:   "ARG V=7\nARG IMG=kiln/x:v$V\nFROM $IMG\n",
			want: []fromRef{{"kiln/x:v7", 3}},
		},
		{
			name:     "TARGETARCH and TARGETPLATFORM need no ARG in the global scope",
			df:       "FROM kiln/go:1-${TARGETARCH}\nFROM kiln/os:${TARGETOS}\n",
			platform: "linux/arm64",
			want:     []fromRef{{"kiln/go:1-arm64", 1}, {"kiln/os:linux", 2}},
		},
		{
			name:     "TARGETVARIANT",
			df:       "FROM kiln/arm:${TARGETARCH}-${TARGETVARIANT}\n",
			platform: "linux/arm/v7",
			want:     []fromRef{{"kiln/arm:arm-v7", 1}},
		},
		{
			name: "ARG inside a stage does not change later FROM lines",
			df:   "ARG X=a\nFROM scratch\nARG X=b\nFROM kiln/x:$X\n",
			want: []fromRef{{"kiln/x:a", 4}},
		},
		{
			name: "stage names are skipped, in any case",
			df:   "FROM kiln/a:1 AS build\nFROM build\nFROM BUILD AS again\nFROM again\n",
			want: []fromRef{{"kiln/a:1", 1}},
		},
		{
			name: "a later stage's name does not hide an earlier image of that name",
			df:   "FROM kiln/a:1\nFROM kiln/b:1 AS kiln/a:1\n",
			want: []fromRef{{"kiln/a:1", 1}, {"kiln/b:1", 2}},
		},
		{
			name: "scratch is skipped, in any case",
			df:   "FROM scratch\nFROM SCRATCH\nFROM kiln/a:1\n",
			want: []fromRef{{"kiln/a:1", 3}},
		},
		{
			name: "repeats are left out; the first line counts",
			df:   "FROM kiln/a:1 AS one\nFROM kiln/b:1\nFROM kiln/a:1 AS two\n",
			want: []fromRef{{"kiln/a:1", 1}, {"kiln/b:1", 2}},
		},
		{
			name: "line numbers count comments, blank lines and continuations",
			df:   "# comment\n\nFROM \\\n  kiln/a:1\nRUN x \\\n  y\nFROM kiln/b:1\n",
			want: []fromRef{{"kiln/a:1", 3}, {"kiln/b:1", 7}},
		},
		{
			name: "--platform flag",
			df:   "FROM --platform=$BUILDPLATFORM kiln/go:1 AS build\nFROM scratch\nCOPY --from=build /x /x\n",
			want: []fromRef{{"kiln/go:1", 1}},
		},
		{
			name: "only scratch",
			df:   "FROM scratch\nCOPY x /x\n",
			want: nil,
		},
		{
			name:    "a required ARG that is unset",
			df:      "ARG BASE\nFROM ${BASE:?set BASE}\n",
			wantErr: "line 2",
		},
		{
			name:    "no instructions",
			df:      "# nothing\n",
			wantErr: "no instructions",
		},
		{
			name:     "bad platform",
			df:       "FROM kiln/a:1\n",
			platform: "linux/amd64/v1/extra",
			wantErr:  "linux/amd64/v1/extra",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pl := tc.platform
			if pl == "" {
				pl = "linux/amd64"
			}
			got, err := fromRefs([]byte(tc.df), tc.buildArgs, pl)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("fromRefs() error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("fromRefs(): %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("fromRefs() = %v, want %v", got, tc.want)
			}
		})
	}
}
