// One error type for everything the API refuses on purpose: an HTTP status and a stable dotted code.
// The error handler renders it as RFC 9457 problem+json; anything else becomes a 500 problem.

export interface FieldError {
  field: string;
  code: string;
  message: string;
}

export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: { errors?: FieldError[]; headers?: Record<string, string>; [k: string]: unknown } = {},
  ) {
    super(message);
  }
}

export const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  408: 'Request Timeout',
  409: 'Conflict',
  410: 'Gone',
  412: 'Precondition Failed',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  428: 'Precondition Required',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export const validationFailed = (errors: FieldError[]) =>
  new AppError(400, 'request.validation_failed', `The request is invalid: ${errors.map((e) => e.field).join(', ')}.`, {
    errors,
  });

export const notFound = (what: string, id: string) =>
  new AppError(404, `${what}.not_found`, `No ${what.replace('_', ' ')} ${id} exists.`);

export const preconditionFailed = (current: number) =>
  new AppError(412, 'precondition_failed', `The resource has changed: its current version is ${current}.`, {
    current_version: current,
  });
