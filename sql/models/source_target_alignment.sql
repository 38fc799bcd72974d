-- Does a starting point gain more on the target it was itself trained on than its overall quality predicts?
-- (Choshen et al. 2023 ask whether an intermediate model helps most on its own source task.) docs/analyses.md.
--
-- A (model, target) cell is `aligned` when the model was trained on that target:
--   local models (hub_models.source = 'local'): the engine records the source dataset as the tag
--     "source:<dataset_id>" (assets/intermediate_models.py); aligned when that dataset is the target;
--   published models: only the Hub id says what they were trained on. The id is lowercased, every run of
--     characters other than a-z0-9 becomes '-', and an alias phrase below must appear as whole tokens; where a row
--     has `with_phrase` the id must hold that second phrase too (tweet_eval subtasks: the corpus and the subtask).
--     The list is conservative: the target's own name and unambiguous spellings of the same dataset only.
-- Residual of a cell: gain - (the model's mean gain over its OTHER targets) - (the target's mean gain over OTHER
-- models) + the architecture's grand mean: what the cell gains beyond the additive expectation, with the cell itself
-- left out of both margins so an aligned cell's own jump does not raise its expectation.
-- Raw gains (not winsorized: clipping would cut exactly the jumps asked about) of unflagged models.
-- Interval: mean residual over cells with a cluster-robust standard error over models (a model's cells are not
-- independent), t with n_models - 1 degrees of freedom. The difference aligned - not aligned uses the same
-- cluster-robust variance over models (a model contributes to both groups), t with the aligned models - 1 df.
with aliases(dataset_id, phrase, with_phrase) as (
    values
        ('20_newsgroup', '20-newsgroup', null), ('20_newsgroup', '20-newsgroups', null),
        ('20_newsgroup', '20newsgroup', null), ('20_newsgroup', '20newsgroups', null), ('20_newsgroup', '20news', null),
        ('ag_news', 'ag-news', null), ('ag_news', 'agnews', null),
        ('amazon_reviews_multi', 'amazon-reviews-multi', null), ('amazon_reviews_multi', 'amazon-reviews', null),
        ('anli', 'anli', null),
        ('boolq', 'boolq', null),
        ('cb', 'cb', null), ('cb', 'commitmentbank', null),
        ('cola', 'cola', null),
        ('copa', 'copa', null),
        ('dbpedia', 'dbpedia', null), ('dbpedia', 'dbpedia14', null),
        ('esnli', 'esnli', null), ('esnli', 'e-snli', null), ('esnli', 'snli', null),
        ('financial_phrasebank', 'financial-phrasebank', null), ('financial_phrasebank', 'phrasebank', null),
        ('imdb', 'imdb', null),
        ('isear', 'isear', null),
        ('mnli', 'mnli', null), ('mnli', 'multinli', null), ('mnli', 'multi-nli', null),
        ('mrpc', 'mrpc', null),
        ('multirc', 'multirc', null),
        ('poem_sentiment', 'poem-sentiment', null),
        ('qnli', 'qnli', null),
        ('qqp', 'qqp', null),
        ('rotten_tomatoes', 'rotten-tomatoes', null), ('rotten_tomatoes', 'rottentomatoes', null),
        ('rte', 'rte', null),
        ('sst2', 'sst2', null), ('sst2', 'sst-2', null),
        ('sst_5bins', 'sst5', null), ('sst_5bins', 'sst-5', null),
        ('stsb', 'stsb', null), ('stsb', 'sts-b', null),
        ('trec_coarse', 'trec', null), ('trec_fine', 'trec', null),
        ('wic', 'wic', null),
        ('wnli', 'wnli', null),
        ('wsc', 'wsc', null),
        ('yahoo_answers', 'yahoo-answers', null), ('yahoo_answers', 'yahoo', null)
),
tweet_corpus(phrase) as (values ('tweet-eval'), ('tweeteval'), ('twitter-eval'), ('cardiffnlp')),
tweet_aliases as (
    select 'tweet_ev_' || sub as dataset_id, t.phrase, sub as with_phrase
    from tweet_corpus t,
         (values ('emoji'), ('emotion'), ('hate'), ('irony'), ('offensive'), ('sentiment')) s(sub)
),
all_aliases as (select * from aliases union all select * from tweet_aliases),
cells as (
    select g.architecture, g.model_id, g.dataset_id, g.gain
    from {{ ref('gains') }} g
    join {{ ref('model_flags') }} f using (architecture, model_id)
    where not f.flagged
),
models as (
    select m.architecture, m.model_id, m.source,
           '-' || regexp_replace(lower(m.model_id), '[^a-z0-9]+', '-', 'g') || '-' as tokens,
           case when m.source = 'local' then coalesce(from_json(m.tags, '["VARCHAR"]'), []) end as tag_list
    from {{ source('warehouse', 'hub_models') }} m
    semi join cells c using (architecture, model_id)
),
aligned_pairs as (
    -- local: the recorded source dataset
    select m.architecture, m.model_id, substr(t.tag, 8) as dataset_id
    from models m, unnest(m.tag_list) t(tag)
    where m.source = 'local' and t.tag like 'source:%'
    union
    -- published and Hub models: an alias of the target among the id's tokens
    select m.architecture, m.model_id, a.dataset_id
    from models m join all_aliases a
      on contains(m.tokens, '-' || a.phrase || '-')
     and (a.with_phrase is null or contains(m.tokens, '-' || a.with_phrase || '-'))
    where m.source is distinct from 'local'
),
margins as (
    select c.*,
           sum(gain) over (partition by architecture, model_id) as model_sum,
           count(*) over (partition by architecture, model_id) as model_n,
           sum(gain) over (partition by architecture, dataset_id) as target_sum,
           count(*) over (partition by architecture, dataset_id) as target_n,
           avg(gain) over (partition by architecture) as grand_mean
    from cells c
),
residuals as (
    select m.architecture, m.model_id, m.dataset_id, m.gain,
           p.model_id is not null as aligned,
           m.gain - (m.model_sum - m.gain) / (m.model_n - 1) - (m.target_sum - m.gain) / (m.target_n - 1)
               + m.grand_mean as residual
    from margins m
    left join aligned_pairs p using (architecture, model_id, dataset_id)
    where m.model_n > 1 and m.target_n > 1
),
groups as (
    select architecture, aligned, count(*) as n_cells, count(distinct model_id) as n_models,
           avg(gain) as mean_gain, avg(residual) as mean_residual
    from residuals group by all
),
per_model as (
    -- each model's summed deviation from its group's mean, for the cluster-robust variance
    select r.architecture, r.model_id, r.aligned, sum(r.residual - g.mean_residual) as dev, any_value(g.n_cells) as n
    from residuals r join groups g using (architecture, aligned)
    group by all
),
group_se as (
    select p.architecture, p.aligned,
           sqrt(sum(p.dev ^ 2) * count(*) / nullif(count(*) - 1, 0)) / any_value(p.n) as se
    from per_model p group by all
),
diff_se as (
    -- a model's contribution to mean(aligned) - mean(not aligned)
    select architecture,
           sqrt(sum(z ^ 2) * count(*) / nullif(count(*) - 1, 0)) as se
    from (
        select architecture, model_id, sum(case when aligned then dev / n else -dev / n end) as z
        from per_model group by all
    )
    group by all
),
summary as (
    select g.*, s.se, d.se as diff_se,
           g.mean_residual - o.mean_residual as diff_vs_other,
           case when g.aligned then g.n_models end as diff_df_models
    from groups g
    join group_se s using (architecture, aligned)
    left join groups o on o.architecture = g.architecture and o.aligned <> g.aligned
    left join diff_se d using (architecture)
)
select
    architecture, aligned, n_cells, n_models, mean_gain, mean_residual,
    {{ t_bounds('mean_residual', 'se', 'n_models - 1', 'residual_low', 'residual_high') }},
    case when aligned then diff_vs_other end as diff_vs_other,
    case when aligned then diff_vs_other - {{ t975('(diff_df_models - 1)') }} * diff_se end as diff_low,
    case when aligned then diff_vs_other + {{ t975('(diff_df_models - 1)') }} * diff_se end as diff_high
from summary
order by architecture, aligned desc
