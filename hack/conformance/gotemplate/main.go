// Command gotemplate renders template cases with Go's text/template, Sprig and werf's werf.yaml
// functions, so that berth.converge's Python evaluator can be checked against the real thing.
//
// Input (stdin): a JSON list of cases {name, template, data, partials: [[name, text]...], env: {NAME: value}}.
// Output (stdout): a JSON list of results {name, output_b64, error}, in input order.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/adler32"
	"os"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	"gopkg.in/yaml.v2"
)

type testCase struct {
	Name     string            `json:"name"`
	Template string            `json:"template"`
	Data     interface{}       `json:"data"`
	Partials [][2]string       `json:"partials"`
	Env      map[string]string `json:"env"`
}

type result struct {
	Name      string `json:"name"`
	OutputB64 string `json:"output_b64"`
	Error     string `json:"error,omitempty"`
}

// werfFuncs adds the functions werf defines for werf.yaml (pkg/config/parser.go) to Sprig's.
func werfFuncs(tmpl *template.Template, env map[string]string) template.FuncMap {
	funcs := sprig.TxtFuncMap()
	delete(funcs, "expandenv")
	funcs["fromYaml"] = func(str string) (map[string]interface{}, error) {
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(str), &m); err != nil {
			return nil, err
		}
		return m, nil
	}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		return execute(tmpl, name, data)
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		name := fmt.Sprintf("tpl-%d", adler32.Checksum([]byte(text)))
		if _, err := tmpl.New(name).Parse(text); err != nil {
			return "", err
		}
		return execute(tmpl, name, data)
	}
	funcs["env"] = func(value interface{}, args ...string) (string, error) {
		if len(args) > 1 {
			return "", fmt.Errorf("more than 1 optional argument prohibited")
		}
		name := fmt.Sprint(value)
		found, ok := env[name]
		if !ok {
			if len(args) == 1 {
				return args[0], nil
			}
			return "", fmt.Errorf("the environment variable %q must be set or default must be provided", name)
		}
		if found == "" && len(args) == 1 {
			return args[0], nil
		}
		return found, nil
	}
	funcs["required"] = func(msg string, val interface{}) (interface{}, error) {
		if val == nil {
			return val, errors.New(msg)
		} else if s, ok := val.(string); ok && s == "" {
			return val, errors.New(msg)
		}
		return val, nil
	}
	return funcs
}

func execute(tmpl *template.Template, name string, data interface{}) (string, error) {
	var buf bytes.Buffer
	if err := tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		return "", err
	}
	return buf.String(), nil
}

func render(c testCase) (out string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	tmpl := template.New("werfConfig")
	tmpl.Funcs(werfFuncs(tmpl, c.Env))
	for _, partial := range c.Partials {
		if _, err := tmpl.New(partial[0]).Parse(partial[1]); err != nil {
			return "", err
		}
	}
	if _, err := tmpl.Parse(c.Template); err != nil {
		return "", err
	}
	return execute(tmpl, "werfConfig", c.Data)
}

func main() {
	var cases []testCase
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		fmt.Fprintln(os.Stderr, "reading cases:", err)
		os.Exit(2)
	}
	results := make([]result, 0, len(cases))
	for _, c := range cases {
		out, err := render(c)
		r := result{Name: c.Name, OutputB64: base64.StdEncoding.EncodeToString([]byte(out))}
		if err != nil {
			r.Error = err.Error()
		}
		results = append(results, r)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	if err := enc.Encode(results); err != nil {
		fmt.Fprintln(os.Stderr, "writing results:", err)
		os.Exit(2)
	}
}
