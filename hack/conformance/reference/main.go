// Reads a JSON list of strings on stdin and prints, for each, how github.com/distribution/reference's
// ParseNormalizedNamed reads it (as Docker does): domain, path, tag and digest, or the error.
package main

import (
	_ "crypto/sha256"
	_ "crypto/sha512"
	"encoding/json"
	"os"

	"github.com/distribution/reference"
)

type result struct {
	Ref    string `json:"ref"`
	Domain string `json:"domain,omitempty"`
	Path   string `json:"path,omitempty"`
	Tag    string `json:"tag,omitempty"`
	Digest string `json:"digest,omitempty"`
	Error  string `json:"error,omitempty"`
}

func main() {
	var refs []string
	if err := json.NewDecoder(os.Stdin).Decode(&refs); err != nil {
		panic(err)
	}
	out := make([]result, 0, len(refs))
	for _, ref := range refs {
		r := result{Ref: ref}
		named, err := reference.ParseNormalizedNamed(ref)
		if err != nil {
			r.Error = err.Error()
		} else {
			r.Domain, r.Path = reference.Domain(named), reference.Path(named)
			if tagged, ok := named.(reference.Tagged); ok {
				r.Tag = tagged.Tag()
			}
			if digested, ok := named.(reference.Digested); ok {
				r.Digest = digested.Digest().String()
			}
		}
		out = append(out, r)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		panic(err)
	}
}
