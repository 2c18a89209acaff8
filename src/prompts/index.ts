export { type FolderFromHistory, writePromptsFromHistory } from './from-history.ts';
export {
  DEFAULT_MAX_PROMPT_BYTES,
  type FileError,
  type FileState,
  PromptConflictError,
  type PromptOrigin,
  restoreVersion,
  type SaveOptions,
  type SaveResult,
  type SyncResult,
  savePrompt,
  syncPromptFile,
} from './history.ts';
export {
  countPromptsByFileState,
  countPromptVersions,
  getPrompt,
  getVersion,
  historyGaps,
  invalidPromptFiles,
  listEvents,
  listPrompts,
  listVersions,
  type PromptDetail,
  type PromptEvent,
  PromptNotFoundError,
  type PromptSummary,
  type PromptVersion,
  type PromptVersionInfo,
} from './history-reads.ts';
export {
  PROMPT_FILE_PATTERN,
  type PromptFileRead,
  PromptFileTimeoutError,
  promptFilePath,
  promptFileProblem,
  readPromptFile,
} from './prompt-file.ts';
export {
  assertPromptName,
  InvalidPromptNameError,
  MissingTemplateValuesError,
  PROMPT_NAME_PATTERN,
  PROMPT_SIZES,
  type PromptDocument,
  PromptValidationError,
  parsePrompt,
  renderTemplate,
  templateVariables,
} from './schema.ts';
export { type LargeFileCache, type SyncOptions, type SyncReport, syncPromptsDir } from './sync-dir.ts';
export { type PromptLogger, type PromptWatcher, type WatchOptions, watchPrompts } from './watcher.ts';
