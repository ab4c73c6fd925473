// Command patternmatcher evaluates .dockerignore cases with github.com/moby/patternmatcher (the code the
// docker CLI and BuildKit run), so that berth.converge's Python port can be checked against the real thing.
//
// Input (stdin): a JSON list of cases {name, dockerignore, paths}.
// Output (stdout): a JSON list of results, in input order:
//
//	{name, patterns (ignorefile.ReadAll), error (patternmatcher.New), bad: [index of each pattern whose
//	 regexp does not compile: Go reports it only when the pattern is first evaluated], ignored: [per path,
//	 MatchesOrParentMatches], match_errors: [per path, the error MatchesOrParentMatches returned or ""]}
package main

import (
	"encoding/json"
	"os"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

type testCase struct {
	Name         string   `json:"name"`
	Dockerignore string   `json:"dockerignore"`
	Paths        []string `json:"paths"`
}

type result struct {
	Name        string   `json:"name"`
	Patterns    []string `json:"patterns"`
	Error       string   `json:"error,omitempty"`
	Bad         []int    `json:"bad"`
	Ignored     []bool   `json:"ignored"`
	MatchErrors []string `json:"match_errors"`
}

func evaluate(c testCase) result {
	r := result{Name: c.Name, Bad: []int{}, Ignored: []bool{}, MatchErrors: []string{}}
	patterns, err := ignorefile.ReadAll(strings.NewReader(c.Dockerignore))
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.Patterns = patterns
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	for i, p := range pm.Patterns() {
		// evaluated for "x", Go compiles the pattern's regexp: as an inclusion, or (when its text starts
		// with "!", which New would read as an exception) as an exception after "*", which matches "x"
		probe := []string{p.String()}
		if strings.HasPrefix(p.String(), "!") {
			probe = []string{"*", "!" + p.String()}
		}
		alone, err := patternmatcher.New(probe)
		if err == nil {
			_, err = alone.MatchesOrParentMatches("x")
		}
		if err != nil {
			r.Bad = append(r.Bad, i)
		}
	}
	for _, path := range c.Paths {
		ignored, err := pm.MatchesOrParentMatches(path)
		message := ""
		if err != nil {
			message = err.Error()
		}
		r.Ignored = append(r.Ignored, ignored)
		r.MatchErrors = append(r.MatchErrors, message)
	}
	return r
}

func main() {
	var cases []testCase
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(2)
	}
	results := make([]result, 0, len(cases))
	for _, c := range cases {
		results = append(results, evaluate(c))
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(2)
	}
}
