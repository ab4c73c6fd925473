// Command kubeyaml reads YAML streams as `kubectl apply -f -` reads `helm template` output, so that
// berth.converge's Python manifest reader can be checked against the real thing: kubectl's stream
// decoder (k8s.io/apimachinery util/yaml, documents split on "---" lines, each converted to JSON by
// sigs.k8s.io/yaml into a runtime.RawExtension, empty and null documents skipped), then each document
// decoded as the unstructured objects kubectl sends (k8s.io/apimachinery util/json: integers int64,
// other numbers float64) and written back as JSON.
//
// Input (stdin): a JSON list of cases {name, yaml}.
// Output (stdout): a JSON list of results {name, documents: [JSON value...], error}, in input order.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

type testCase struct {
	Name string `json:"name"`
	YAML string `json:"yaml"`
}

type result struct {
	Name      string            `json:"name"`
	Documents []json.RawMessage `json:"documents"`
	Error     string            `json:"error,omitempty"`
}

// read mirrors k8s.io/cli-runtime's StreamVisitor.Visit up to the unstructured object.
func read(text string) (documents []json.RawMessage, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	documents = []json.RawMessage{}
	decoder := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(text), 4096)
	for {
		ext := runtime.RawExtension{}
		if err := decoder.Decode(&ext); err != nil {
			if errors.Is(err, io.EOF) {
				return documents, nil
			}
			return nil, err
		}
		raw := []byte(strings.TrimSpace(string(ext.Raw)))
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		var object interface{}
		if err := utiljson.Unmarshal(raw, &object); err != nil {
			return nil, err
		}
		encoded, err := json.Marshal(object)
		if err != nil {
			return nil, err
		}
		documents = append(documents, encoded)
	}
}

func main() {
	var cases []testCase
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		fmt.Fprintln(os.Stderr, "reading cases:", err)
		os.Exit(2)
	}
	results := make([]result, 0, len(cases))
	for _, c := range cases {
		documents, err := read(c.YAML)
		r := result{Name: c.Name, Documents: documents}
		if err != nil {
			r.Error = err.Error()
			r.Documents = nil
		}
		results = append(results, r)
	}
	out := json.NewEncoder(os.Stdout)
	if err := out.Encode(results); err != nil {
		fmt.Fprintln(os.Stderr, "writing results:", err)
		os.Exit(2)
	}
}
