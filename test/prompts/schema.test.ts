import { describe, expect, it } from 'vitest';
import {
  MissingTemplateValuesError,
  PromptValidationError,
  parsePrompt,
  renderTemplate,
  templateVariables,
} from '../../src/prompts/schema.ts';

const VALID = `name: ghibli-portrait
title: Ghibli portrait
model: gpt-image-1            # the provider's model name
template: "Turn {subject} into a hand-painted anime portrait, soft evening light"
negative: "blurry, extra fingers, text"
parameters:
  temperature: 0.7
  seed: 42
  size: medium
  steps: 30
tags: [portrait, anime]
`;

function failure(text: string, expectedName?: string): PromptValidationError {
  try {
    parsePrompt(text, expectedName);
  } catch (error) {
    if (error instanceof PromptValidationError) return error;
    throw error;
  }
  throw new Error('expected a PromptValidationError');
}

describe('parsePrompt', () => {
  it('names the quote that opens an unclosed string, not the end of the file', () => {
    for (const quote of ['"', "'"]) {
      const error = failure(
        `name: x\ntitle: ${quote}Ghibli portrait\nmodel: local\ntemplate: t\ntags: [a]\n`,
      );
      expect(error.message).toBe('line 2, column 8: this quote is never closed');
    }
  });

  it('refuses a %YAML directive for a version it cannot read', () => {
    const error = failure(`%YAML 9.9\n---\n${VALID}`, 'ghibli-portrait');
    expect(error.message).toBe(
      'line 1, column 7: Unsupported YAML version 9.9: only YAML 1.1 and 1.2 are read',
    );
    expect(parsePrompt(`%YAML 1.2\n---\n${VALID}`, 'ghibli-portrait').name).toBe('ghibli-portrait');
  });

  it('reads the documented example', () => {
    expect(parsePrompt(VALID, 'ghibli-portrait')).toEqual({
      name: 'ghibli-portrait',
      title: 'Ghibli portrait',
      model: 'gpt-image-1',
      template: 'Turn {subject} into a hand-painted anime portrait, soft evening light',
      negative: 'blurry, extra fingers, text',
      parameters: { temperature: 0.7, seed: 42, size: 'medium', steps: 30 },
      tags: ['portrait', 'anime'],
    });
  });

  it('defaults parameters and tags', () => {
    const doc = parsePrompt('name: a\ntitle: A\nmodel: local\ntemplate: x\n');
    expect(doc.parameters).toEqual({});
    expect(doc.tags).toEqual([]);
  });

  it('reports a YAML syntax error at its line and column', () => {
    const error = failure('name: a\ntitle: "Ghibli" portrait\nmodel: local\n');
    expect([error.line, error.column]).toEqual([2, 17]);
    expect(error.message).toBe('line 2, column 17: Unexpected scalar at node end');
    expect(failure('name: a\ntitle: A\n  size: hd\n').message).toBe(
      'line 2, column 8: Nested mappings are not allowed in compact mappings',
    );
  });

  it('reports a wrong value at a nested key at the value', () => {
    const text = 'name: a\ntitle: A\nparameters:\n  size: huge\nmodel: local\ntemplate: x\n';
    const error = failure(text, 'a');
    expect(error.message).toBe('line 4, column 9: parameters.size must be one of small, medium, large, hd');
    expect([error.line, error.column]).toEqual([4, 9]);
  });

  it('reports a wrong type at a nested key', () => {
    const error = failure('name: a\ntitle: A\nmodel: local\ntemplate: x\nparameters:\n  temperature: hot\n');
    expect(error.message).toBe(
      'line 6, column 16: parameters.temperature must be a number, found a string "hot"',
    );
    expect(failure('name: a\ntitle: A\nmodel: m\ntemplate: x\nparameters:\n  seed: 1.5\n').message).toBe(
      'line 6, column 9: parameters.seed must be a whole number, found 1.5',
    );
    expect(failure('name: a\ntitle: A\nmodel: m\ntemplate: x\nparameters: {temperature: 3}\n').message).toBe(
      'line 5, column 27: parameters.temperature must be at most 2',
    );
  });

  it('reports a wrong list item at the item', () => {
    const error = failure('name: a\ntitle: A\nmodel: m\ntemplate: x\ntags:\n  - ok\n  - [nested]\n');
    expect(error.message).toBe('line 7, column 5: tags[1] must be a string, found a list');
  });

  it('names unknown top-level keys at the first one', () => {
    const error = failure('name: a\ntitle: A\nmodel: m\ntemplate: x\nprompt: y\nstyle: z\n');
    expect([error.line, error.column]).toEqual([5, 1]);
    expect(error.message).toContain('unknown keys "prompt", "style"');
  });

  it('requires the name in the file to equal the file name, at the name', () => {
    const error = failure('title: A\nname: other\nmodel: m\ntemplate: x\n', 'mine');
    expect([error.line, error.column]).toEqual([2, 7]);
    expect(error.message).toBe(
      'line 2, column 7: name is "other" but the file is mine.yaml: they must agree',
    );
  });

  it('reports the first problem in file order', () => {
    const error = failure('name: a\ntitle: ""\nmodel: m\ntemplate: x\nparameters: {size: huge}\n');
    expect(error.message).toBe('line 2, column 8: title must not be empty');
  });

  it('reports a missing key at the map that should hold it', () => {
    expect(failure('name: a\ntitle: A\nmodel: m\n').message).toBe('line 1, column 1: template is required');
  });

  it('explains an empty file, a list, a lone value and several documents', () => {
    expect(failure('').message).toMatch(/^line 1, column 1: the file is empty/);
    expect(failure('# only a comment\n').message).toMatch(/^line 1, column 1: the file is empty/);
    expect(failure('\n- name: a\n').message).toMatch(/^line 2, column 1: expected a map .*found a list$/);
    expect(failure('hello\n').message).toMatch(/found a single value$/);
    const multi = failure('name: a\ntitle: A\nmodel: m\ntemplate: x\n---\nname: b\n');
    expect([multi.line, multi.column]).toEqual([5, 1]);
    expect(multi.message).toContain('second YAML document');
  });

  it('reports duplicate keys and tabs as YAML errors with positions', () => {
    expect(failure('name: a\nname: b\n').message).toBe('line 2, column 1: Map keys must be unique');
    expect(failure('name: a\ntitle: *missing\n').line).toBe(2);
  });

  it('does not count a byte-order mark as a column', () => {
    expect(failure('\uFEFFname: a\ntitle: A\nmodel: m\ntemplate: x\nextra: 1\n').line).toBe(5);
    const error = failure('\uFEFFtitle: "A" B\n');
    expect([error.line, error.column]).toEqual([1, 12]);
  });
});

describe('templates', () => {
  it('lists variables once, in order', () => {
    expect(templateVariables('{subject} in {style}, {subject} again, {not a var} {}')).toEqual([
      'subject',
      'style',
    ]);
  });

  it('renders values and refuses missing ones by name', () => {
    expect(renderTemplate('Turn {subject} into {style}', { subject: 'a cat', style: 'anime' })).toBe(
      'Turn a cat into anime',
    );
    const error = (() => {
      try {
        renderTemplate('{a} {b} {c}', { b: 1 });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(MissingTemplateValuesError);
    expect((error as MissingTemplateValuesError).missing).toEqual(['a', 'c']);
    expect((error as Error).message).toBe('the template needs a value for {a}, {c}');
  });
});
