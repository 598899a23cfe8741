// English and Simplified Chinese strings of the page.

export const STRINGS = {
  en: {
    title: 'CT Triage',
    subtitle: 'Lung nodule triage · chest CT',
    privacy: 'Processed on this device — nothing is uploaded',
    dropTitle: 'Drop a CT series here',
    dropSub: 'A DICOM folder, a .zip archive or individual files',
    chooseFolder: 'Choose folder',
    chooseFiles: 'Choose files or .zip',
    dropNote: 'The images are read by this browser tab only. They are never sent to a server.',
    engineLoading: 'Loading the analysis engine…',
    engineReady: 'Engine ready · model {model} · works offline',
    engineFailed: 'The analysis engine could not start: {msg}',
    pickSeries: 'Several series found — choose one',
    analyze: 'Analyse',
    cancel: 'Cancel',
    analysing: 'Analysing',
    reading: 'Reading files…',
    errorTitle: 'The series could not be analysed',
    cancelled: 'Analysis cancelled.',
    crashed: 'The analysis engine stopped unexpectedly and was restarted. Please try again.',
    wLung: 'Lung',
    wMediastinum: 'Mediastinum',
    wBone: 'Bone',
    overlay: 'Findings',
    viewerHint: 'Wheel or ↑/↓: slices · Ctrl + wheel: zoom · drag: pan · double-click: fit',
    triage: 'Worklist priority',
    findings: 'Findings',
    thLocation: 'Location',
    thType: 'Type',
    thSize: 'Size',
    thMalignancy: 'Malignancy',
    noFindings: 'No nodule was found.',
    downloads: 'Downloads',
    dlReport: 'Report (JSON)',
    dlSr: 'DICOM SR + SEG',
    dlSrSoon: 'DICOM export failed',
    dlKeys: 'Key images',
    newStudy: 'Analyse another series',
    statusLabel: 'Status',
    disclaimerTitle: 'Research software — not a medical device.',
    disclaimer: 'Not validated for clinical use. Every finding must be checked by a radiologist. Results support triage only and never replace a diagnostic read.',
    slice: 'Slice {n} / {total}',
    analysedIn: 'Analysed on this device in {s} s',
    series: 'series',
    slices: '{n} slices',
    selectedAuto: 'automatic choice',
    notEligible: 'not analysable',
    // stages
    st_read: 'Read', st_ingest: 'Decode', st_resample: 'Resample', st_lungs: 'Lungs',
    st_candidates: 'Candidates', st_classify: 'Classify', st_measure: 'Measure',
    st_triage: 'Triage', st_report: 'Report',
    // priorities
    p_urgent: 'Urgent', p_priority: 'Priority', p_routine: 'Routine', p_inconclusive: 'Inconclusive',
    // nodule types, sides, zones
    t_solid: 'Solid', t_part_solid: 'Part-solid', t_ground_glass: 'Ground-glass', t_calcified: 'Calcified',
    k_mass: 'mass',
    side_right: 'R', side_left: 'L',
    zone_upper: 'upper', zone_middle: 'middle', zone_lower: 'lower',
    juxtapleural: 'juxtapleural',
    lungsMeta: 'Lungs {r} + {l} mL · {n} candidates · model {model}',
    patientMeta: 'Age {age} ({src}) · {sex}',
    female: 'female', male: 'male',
    warnTitle: 'Input warnings',
    mm: 'mm',
  },
  zh: {
    title: 'CT 分诊',
    subtitle: '肺结节分诊 · 胸部 CT',
    privacy: '全部在本机处理 — 不上传任何数据',
    dropTitle: '将 CT 序列拖放到此处',
    dropSub: 'DICOM 文件夹、.zip 压缩包或单个文件',
    chooseFolder: '选择文件夹',
    chooseFiles: '选择文件或 .zip',
    dropNote: '影像仅由本浏览器标签页读取，绝不会发送到服务器。',
    engineLoading: '正在加载分析引擎…',
    engineReady: '引擎就绪 · 模型 {model} · 可离线使用',
    engineFailed: '分析引擎无法启动：{msg}',
    pickSeries: '发现多个序列 — 请选择一个',
    analyze: '开始分析',
    cancel: '取消',
    analysing: '正在分析',
    reading: '正在读取文件…',
    errorTitle: '无法分析该序列',
    cancelled: '分析已取消。',
    crashed: '分析引擎意外停止，已重新启动。请重试。',
    wLung: '肺窗',
    wMediastinum: '纵隔窗',
    wBone: '骨窗',
    overlay: '标注',
    viewerHint: '滚轮或 ↑/↓：切换层面 · Ctrl + 滚轮：缩放 · 拖动：平移 · 双击：适应窗口',
    triage: '工作列表优先级',
    findings: '发现',
    thLocation: '位置',
    thType: '类型',
    thSize: '大小',
    thMalignancy: '恶性概率',
    noFindings: '未发现结节。',
    downloads: '下载',
    dlReport: '报告（JSON）',
    dlSr: 'DICOM SR + SEG',
    dlSrSoon: 'DICOM 导出失败',
    dlKeys: '关键图像',
    newStudy: '分析其他序列',
    statusLabel: '状态',
    disclaimerTitle: '科研软件 — 非医疗器械。',
    disclaimer: '未经临床验证。所有发现须由放射科医师复核。结果仅用于辅助分诊，不能替代诊断阅片。',
    slice: '层面 {n} / {total}',
    analysedIn: '已在本机完成分析，用时 {s} 秒',
    series: '序列',
    slices: '{n} 层',
    selectedAuto: '自动选择',
    notEligible: '无法分析',
    st_read: '读取', st_ingest: '解码', st_resample: '重采样', st_lungs: '肺分割',
    st_candidates: '候选检测', st_classify: '分类', st_measure: '测量',
    st_triage: '分诊', st_report: '报告',
    p_urgent: '紧急', p_priority: '优先', p_routine: '常规', p_inconclusive: '无法判定',
    t_solid: '实性', t_part_solid: '部分实性', t_ground_glass: '磨玻璃', t_calcified: '钙化',
    k_mass: '肿块',
    side_right: '右', side_left: '左',
    zone_upper: '上', zone_middle: '中', zone_lower: '下',
    juxtapleural: '近胸膜',
    lungsMeta: '肺容积 右 {r} + 左 {l} mL · 候选 {n} 个 · 模型 {model}',
    patientMeta: '年龄 {age}（{src}）· {sex}',
    female: '女', male: '男',
    warnTitle: '输入警告',
    mm: '毫米',
  },
};

let lang = 'en';

/** Current language (`en` or `zh`). */
export function currentLang() {
  return lang;
}

/** Translate `key`, filling `{name}` placeholders from `vars`. */
export function t(key, vars = {}) {
  const s = STRINGS[lang][key] ?? STRINGS.en[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => (vars[k] ?? `{${k}}`));
}

/** Switch language and translate every `[data-i18n]` element. */
export function setLang(l) {
  lang = STRINGS[l] ? l : 'en';
  document.documentElement.lang = lang === 'zh' ? 'zh-Hans' : 'en';
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const b of document.querySelectorAll('[data-lang]')) b.classList.toggle('on', b.dataset.lang === lang);
  try { localStorage.setItem('ct-triage-lang', lang); } catch { /* private mode */ }
}

/** The language to start with: saved choice, else the browser's. */
export function initialLang() {
  try {
    const saved = localStorage.getItem('ct-triage-lang');
    if (saved && STRINGS[saved]) return saved;
  } catch { /* private mode */ }
  return (navigator.language || 'en').toLowerCase().startsWith('zh') ? 'zh' : 'en';
}
