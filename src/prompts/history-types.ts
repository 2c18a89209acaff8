/** The words of the prompt history, shared by its writes (history.ts) and reads (history-reads.ts). */
export type PromptOrigin = 'file' | 'api' | 'restore' | 'import';
export type FileState = 'ok' | 'invalid' | 'deleted';

/** Stored in prompts.file_error and prompt_events.error. */
export interface FileError {
  message: string;
  line: number;
  column: number;
  /** Set when the event's content is base64 because the file was not UTF-8 text. */
  contentEncoding?: 'base64';
}
