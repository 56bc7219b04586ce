// The import job and its rejected rows, as the API answers them.
import { Type } from 'typebox';
import { Cursor, Id, Limit } from '../../http/schemas.js';
import { FORMATS } from './formats.js';
import { PROFILE_NAMES } from './profiles/index.js';

const Count = Type.Integer({ minimum: 0 });

const ImportState = Type.Enum(['running', 'completed', 'failed'], { description: 'running until the whole file is read; a run that stopped stays running (failure says why): send the same file again to resume' });

export const ImportJobSchema = Type.Object(
  {
    id: Id('imp'),
    state: ImportState,
    profile: Type.Enum(PROFILE_NAMES),
    format: Type.Enum([...FORMATS]),
    dry_run: Type.Boolean(),
    user_events: Type.Boolean({ description: 'One user.created event per created user, besides import.completed' }),
    source_name: Type.Union([Type.String(), Type.Null()]),
    counts: Type.Object({
      read: Count, imported: Type.Integer({ minimum: 0, description: 'Created (in a dry run: would be created)' }),
      existing: Type.Integer({ minimum: 0, description: 'Already present (same external_ref): nothing created' }), rejected: Count,
    }, { title: 'ImportCounts' }),
    resume_line: Type.Integer({ minimum: 0, description: 'The last line of the file committed; a resumed run starts after it' }),
    moved_fields: Type.Record(Type.String(), Type.String(), { description: 'Vendor fields with no Kyclo home → where they went' }),
    failure: Type.Union([Type.String(), Type.Null()], { description: 'Why the last run stopped before the end of the file' }),
    created_at: Type.String({ format: 'date-time' }),
    updated_at: Type.String({ format: 'date-time' }),
    completed_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  },
  { title: 'ImportJob', description: 'A bulk import of users from a file' },
);

export const ImportError = Type.Object(
  {
    line: Type.Integer({ minimum: 1, description: 'The line of the file the record starts on' }),
    field: Type.String({ description: 'The field at fault, as POST /v1/users names it (record: the line itself)' }),
    code: Type.String({ description: 'The problem code, as POST /v1/users answers it (malformed: not a record)' }),
    message: Type.String(),
  },
  { title: 'ImportRowError' },
);

export const ImportQuery = Type.Object(
  {
    profile: Type.Optional(Type.Enum(PROFILE_NAMES, { description: 'The source’s record format (default kyclo)' })),
    format: Type.Optional(Type.Enum([...FORMATS], { description: 'Default: from Content-Type (text/csv: csv; application/json: json; else ndjson)' })),
    dry_run: Type.Optional(Type.Boolean({ description: 'Check every row and report; write no user' })),
    user_events: Type.Optional(Type.Boolean({ description: 'One user.created event per created user (webhooks)' })),
    name: Type.Optional(Type.String({ maxLength: 200, pattern: '^[\\x20-\\x7e]*$', description: 'The file’s name, shown in the job' })),
  },
  { additionalProperties: false },
);

export const ListQuery = Type.Object(
  { limit: Type.Optional(Limit), cursor: Type.Optional(Cursor), state: Type.Optional(ImportState) },
  { additionalProperties: false },
);

export const ErrorsQuery = Type.Object({ limit: Type.Optional(Limit), cursor: Type.Optional(Cursor) }, { additionalProperties: false });
