// @ts-check
// The module's one error type (shared by the engine client and the DICOMweb client).

/** An error from ct-triage: `code` is the core error code (`not_dicom`, `no_series`, `cancelled`, …) or a DICOMweb code (`dicomweb_unreachable`, `dicomweb_auth`, …). */
export class CtTriageError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.name = code === 'cancelled' ? 'AbortError' : 'CtTriageError';
    this.code = code;
  }
}

/** The error of a cancelled request. */
export function abortError() {
  return new CtTriageError('cancelled', 'cancelled');
}
