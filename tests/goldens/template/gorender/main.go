// Command gorender renders ossy's template golden cases with Go's own text/template, so
// the Python engine (ossy.template) can be checked against the real thing.
//
//	gorender -dir tests/goldens/template           # rewrite expected/ from cases/
//	gorender -dir tests/goldens/template -stdin    # render one case read from stdin
//
// A case file (cases/*.json) holds {"cases": [case...]}. A case names a template (inline
// "template", or "template_file" under templates/) and either "data" (any JSON, executed
// directly: ints stay int, other numbers are float64) or "ollama" (a chat request's
// messages, tools, think, prompt and suffix, rendered as Ollama renders prompts). Options:
// "missingkey" (default "zero", as Ollama sets it), "today" (currentDate's date, default
// 2025-08-05) and "tname" (the template's name, default TEMPLATE). The result goes to
// expected/<file>/<case>.out, or .err holding Go's error text.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	gotemplate "text/template"
	"time"

	"gorender/api"
	"gorender/template"
)

type request struct {
	Messages []api.Message  `json:"messages"`
	Tools    api.Tools      `json:"tools"`
	Think    *api.ThinkValue `json:"think"`
	Prompt   string         `json:"prompt"`
	Suffix   string         `json:"suffix"`
}

type testCase struct {
	Name         string          `json:"name"`
	Template     *string         `json:"template"`
	TemplateFile string          `json:"template_file"`
	Data         json.RawMessage `json:"data"`
	Ollama       *request        `json:"ollama"`
	Missingkey   string          `json:"missingkey"`
	Today        string          `json:"today"`
	TName        string          `json:"tname"`
}

func main() {
	dir := flag.String("dir", ".", "the goldens directory (cases/, templates/, expected/)")
	stdin := flag.Bool("stdin", false, "render one case from stdin and print the result as JSON")
	flag.Parse()
	var err error
	if *stdin {
		err = renderStdin(*dir)
	} else {
		err = writeGoldens(*dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gorender:", err)
		os.Exit(1)
	}
}

func renderStdin(dir string) error {
	var c testCase
	if err := json.NewDecoder(os.Stdin).Decode(&c); err != nil {
		return err
	}
	out, renderErr := render(dir, c)
	result := map[string]string{"output": out}
	if renderErr != nil {
		result = map[string]string{"error": renderErr.Error()}
	}
	return json.NewEncoder(os.Stdout).Encode(result)
}

func writeGoldens(dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "cases", "*.json"))
	if err != nil {
		return err
	}
	expected := filepath.Join(dir, "expected")
	if err := os.RemoveAll(expected); err != nil {
		return err
	}
	total := 0
	for _, file := range files {
		var suite struct {
			Cases []testCase `json:"cases"`
		}
		raw, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &suite); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		group := filepath.Join(expected, strings.TrimSuffix(filepath.Base(file), ".json"))
		if err := os.MkdirAll(group, 0o755); err != nil {
			return err
		}
		for _, c := range suite.Cases {
			out, renderErr := render(dir, c)
			path, body := filepath.Join(group, c.Name+".out"), out
			if renderErr != nil {
				path, body = filepath.Join(group, c.Name+".err"), renderErr.Error()
			}
			if _, err := os.Stat(strings.TrimSuffix(path, filepath.Ext(path)) + ".out"); err == nil {
				return fmt.Errorf("%s: case %q appears twice", file, c.Name)
			}
			if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
				return err
			}
			total++
		}
	}
	fmt.Printf("gorender: wrote %d golden outputs under %s\n", total, expected)
	return nil
}

func render(dir string, c testCase) (string, error) {
	text, err := templateText(dir, c)
	if err != nil {
		return "", err
	}
	now, err := time.Parse("2006-01-02", orDefault(c.Today, "2025-08-05"))
	if err != nil {
		return "", err
	}
	name := orDefault(c.TName, "TEMPLATE")
	var b bytes.Buffer
	if c.Ollama != nil {
		t, err := template.Parse(name, text, now)
		if err != nil {
			return "", err
		}
		err = t.Execute(&b, values(c.Ollama))
		return b.String(), err
	}
	option := "missingkey=" + orDefault(c.Missingkey, "zero")
	t, err := gotemplate.New(name).Option(option).Funcs(template.Funcs(now)).Parse(text)
	if err != nil {
		return "", err
	}
	data, err := decodeData(c.Data)
	if err != nil {
		return "", err
	}
	err = t.Execute(&b, data)
	return b.String(), err
}

func values(r *request) template.Values {
	return template.Values{
		Messages:   r.Messages,
		Tools:      r.Tools,
		Prompt:     r.Prompt,
		Suffix:     r.Suffix,
		Think:      r.Think.Bool(),
		ThinkLevel: r.Think.String(),
		IsThinkSet: r.Think != nil,
	}
}

func templateText(dir string, c testCase) (string, error) {
	if c.Template != nil {
		return *c.Template, nil
	}
	raw, err := os.ReadFile(filepath.Join(dir, "templates", c.TemplateFile))
	return string(raw), err
}

func orDefault(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

// decodeData decodes JSON into Go values the way ossy sees Python's json.loads output:
// objects are map[string]any, arrays []any (with no spare capacity), integers int and
// other numbers float64.
func decodeData(raw json.RawMessage) (any, error) {
	if len(raw) == 0 {
		return map[string]any{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return convert(v), nil
}

func convert(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return int(i)
		}
		f, _ := v.Float64()
		return f
	case []any:
		out := make([]any, len(v))
		for i, item := range v {
			out[i] = convert(item)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for key, item := range v {
			out[key] = convert(item)
		}
		return out
	}
	return v
}
